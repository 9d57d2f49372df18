"""The Gradio page of ``vfikit ui``: layout and event wiring only (the logic is in core.py and jobs.py).

Every handler catches errors itself and shows them in the error box: a VfikitError as its message (the
CLI's text), anything else as one line naming the error type, never a traceback.
"""

from __future__ import annotations

import html
import traceback
from pathlib import Path
from typing import Any

import gradio as gr

from vfikit.errors import VfikitError
from vfikit.ui.core import (
    DEFAULT_MAX_UPLOAD_MB,
    DEFAULT_PAIR_FPS,
    TARGETS,
    Previewer,
    StagedInput,
    find_choice,
    model_choices,
    stage_upload,
    timing_kwargs,
)
from vfikit.ui.jobs import JobManager, JobRequest, JobStatus

CSS = """
#vfikit-error .vfikit-error {border: 1px solid #d33; background: #fff0f0; color: #900; padding: 8px 12px;
  border-radius: 6px; white-space: pre-wrap}
#vfikit-progress progress {width: 100%; height: 18px}
"""
INTRO = (
    "# vfikit: frame interpolation\n"
    "Drop **a video** or **two images**, preview the middle frame of one pair against the plain frame average, "
    "then run. The work runs on this computer; the page only talks to it."
)


def error_html(message: str | None) -> str:
    """The error box's content: the message, escaped; empty when there is none."""
    if not message:
        return ""
    return f'<div class="vfikit-error" role="alert">{html.escape(message)}</div>'


def progress_html(status: JobStatus | None) -> str:
    """A progress bar with the job's state, frames and ETA (``data-state`` for scripts and tests)."""
    if status is None:
        return '<div class="vfikit-progress" data-state="none">no job yet</div>'
    percent = round(100 * status.fraction)
    return (
        f'<div class="vfikit-progress" data-state="{status.state}" data-done="{status.done}">'
        f'<progress max="100" value="{percent}"></progress> {html.escape(status.text())}</div>'
    )


def explain(exc: BaseException) -> str:
    """A message for the page: a VfikitError's own text; for anything else its type (traceback to the console)."""
    if isinstance(exc, (VfikitError, OSError)):
        return str(exc)
    traceback.print_exc()
    return f"internal error ({type(exc).__name__}: {exc}); the server console has the details"


def build_app(
    manager: JobManager,
    *,
    staging: Path,
    upload_root: Path | None,
    max_bytes: int = DEFAULT_MAX_UPLOAD_MB * 2**20,
    previewer: Previewer | None = None,
    device: str = "cpu",
) -> gr.Blocks:
    """The page. ``staging``: private folder for uploaded inputs; ``upload_root``: Gradio's upload folder."""
    previewer = previewer or Previewer()
    choices = model_choices(device)
    labels = [c.label for c in choices]

    def on_upload(files: list[str] | None, old: StagedInput | None) -> tuple:
        if old is not None:
            old.remove()
        hidden = gr.update(visible=False, value=0, maximum=1)
        if not files:
            return None, "", hidden, "", None, ""
        try:
            staged = stage_upload(files, staging, upload_root=upload_root, max_bytes=max_bytes)
        except Exception as exc:
            return None, "", hidden, error_html(explain(exc)), None, ""
        pairs = staged.pairs
        slider = gr.update(visible=pairs > 1, minimum=0, maximum=max(1, pairs - 1), value=(pairs - 1) // 2, step=1)
        info = staged.describe() + "".join(f"\n\nnote: {n}" for n in staged.notes)
        return staged, info, slider, "", None, ""

    def on_preview(staged: StagedInput | None, label: str, pair: float | None) -> tuple:
        if staged is None:
            return None, "", error_html("drop a video, or two images, first")
        try:
            choice = find_choice(label, choices)
            result = previewer(staged, choice.name, int(pair or 0))
        except Exception as exc:
            return None, "", error_html(explain(exc))
        caption = (
            f"pair {result.pair} -> {result.pair + 1}: left, the frame average; right, the middle frame by "
            f"**{result.model}** ({result.seconds:.1f} s). Drag the handle to compare."
        )
        return (result.average, result.middle), caption, ""

    def on_run(staged: StagedInput | None, label: str, target: str, value: str, scene: bool, pair_fps: str) -> tuple:
        if staged is None:
            return gr.skip(), error_html("drop a video, or two images, first"), gr.skip()
        try:
            choice = find_choice(label, choices)
            timing = timing_kwargs(target, value)
            if staged.kind == "pair":
                timing_kwargs("frame rate", pair_fps or DEFAULT_PAIR_FPS)  # checks the rate like --input-fps
            job = manager.submit(JobRequest(staged, choice.name, choice.label, timing, bool(scene),
                                            str(pair_fps or DEFAULT_PAIR_FPS).strip()))
        except Exception as exc:
            return gr.skip(), error_html(explain(exc)), gr.skip()
        return job.id, "", ""

    def on_cancel(job_id: str | None) -> str:
        if not manager.cancel(job_id):
            return error_html("there is no queued or running job to cancel")
        return ""

    def on_poll(job_id: str | None, shown: str) -> tuple:
        status = manager.status(job_id)
        if status is None:  # a new tab, or the id of a job from before a restart: show the active job
            active = manager.active()
            status = manager.status(active.id) if active is not None else None
        if status is None:
            return progress_html(None), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        key = f"{status.id}:{status.state}"
        if key == shown:
            return progress_html(status), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        new_id = status.id if status.id != job_id else gr.skip()
        output = str(status.output) if status.output is not None else None
        error = error_html(status.message) if status.state == "failed" else gr.skip()
        return progress_html(status), output, output, error, key, new_id

    with gr.Blocks(title="vfikit", analytics_enabled=False, delete_cache=(600, 3600)) as demo:
        staged_state = gr.State(None, time_to_live=6 * 3600, delete_callback=lambda s: s and s.remove())
        shown = gr.State("")
        job_id = gr.BrowserState(None, storage_key="vfikit-job")
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column(scale=3):
                upload = gr.File(label="A video, or two images", file_count="multiple", elem_id="vfikit-upload")
                info = gr.Markdown(elem_id="vfikit-info")
            with gr.Column(scale=2):
                model = gr.Dropdown(labels, value=labels[0] if labels else None, label="Model",
                                    elem_id="vfikit-model")
                target = gr.Radio(list(TARGETS), value="2x", label="Target", elem_id="vfikit-target")
                target_value = gr.Textbox(label="frame rate (e.g. 60, 24000/1001) or slow-motion factor",
                                          placeholder="only for 'frame rate' and 'slow motion'",
                                          elem_id="vfikit-target-value")
                scene = gr.Checkbox(True, label="scene-cut detection (copy frames across cuts)", elem_id="vfikit-scene")
                pair_fps = gr.Textbox(DEFAULT_PAIR_FPS, label="two images: frames per second of the input",
                                      elem_id="vfikit-pair-fps")
        error = gr.HTML(elem_id="vfikit-error")
        with gr.Row():
            pair = gr.Slider(0, 1, value=0, step=1, label="pair to preview (frame number)", visible=False,
                             elem_id="vfikit-pair")
            preview_button = gr.Button("Preview", elem_id="vfikit-preview-button")
        preview = gr.ImageSlider(label="frame average | model", type="numpy", format="png",
                                 elem_id="vfikit-preview")
        caption = gr.Markdown(elem_id="vfikit-preview-caption")
        with gr.Row():
            run_button = gr.Button("Run", variant="primary", elem_id="vfikit-run")
            cancel_button = gr.Button("Cancel", variant="stop", elem_id="vfikit-cancel")
        progress = gr.HTML(progress_html(None), elem_id="vfikit-progress")
        result = gr.Video(label="result", interactive=False, height=400, loop=True, elem_id="vfikit-result")
        download = gr.File(label="download", interactive=False, elem_id="vfikit-download")

        private: dict[str, Any] = {"api_visibility": "private"}
        upload.change(on_upload, [upload, staged_state], [staged_state, info, pair, error, preview, caption],
                      **private)
        preview_button.click(on_preview, [staged_state, model, pair], [preview, caption, error], **private)
        run_button.click(on_run, [staged_state, model, target, target_value, scene, pair_fps],
                         [job_id, error, shown], **private)
        cancel_button.click(on_cancel, [job_id], [error], **private)
        poll_outputs = [progress, result, download, error, shown, job_id]
        timer = gr.Timer(0.5)
        timer.tick(on_poll, [job_id, shown], poll_outputs, concurrency_limit=None, show_progress="hidden", **private)
        demo.load(on_poll, [job_id, shown], poll_outputs, show_progress="hidden", **private)
    return demo


__all__ = ["CSS", "build_app", "error_html", "progress_html"]
