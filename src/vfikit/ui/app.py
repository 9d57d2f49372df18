"""The Gradio page of ``vfikit ui``: layout and event wiring only (the logic is in core.py, jobs.py, results.py).

Every handler catches errors itself and shows them in the error box: a VfikitError as its message (the
CLI's text), anything else as one line naming the error type, never a traceback.
"""

from __future__ import annotations

import html
import shutil
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from vfikit.errors import VfikitError
from vfikit.ui.core import (
    DEFAULT_MAX_UPLOAD_MB,
    DEFAULT_PAIR_FPS,
    TARGETS,
    ModelChoice,
    Previewer,
    StagedInput,
    clean_message,
    find_choice,
    model_choices,
    model_legend,
    plan_text,
    stage_upload,
    timing_kwargs,
)
from vfikit.ui.jobs import ACTIVE, JobManager, JobRequest, JobStatus

CSS = """
#vfikit-error .vfikit-error {border: 1px solid #d33; background: #fff0f0; color: #900; padding: 8px 12px;
  border-radius: 6px; white-space: pre-wrap}
#vfikit-progress progress {width: 100%; height: 18px}
#vfikit-progress .vfikit-job {font-weight: 600; margin-bottom: 4px}
#vfikit-plan {font-size: 1.05em}
"""
INTRO = (
    "# vfikit: frame interpolation\n"
    "Drop **a video** or **two images**, preview the middle frame of one pair against the plain frame average, "
    "then run. The work runs on this computer; the page only talks to it."
)
VALUE_LABELS = {
    "frame rate": ("target frame rate", "e.g. 60, 50 or 24000/1001"),
    "slow motion": ("slow motion: how many times slower", "a whole number, e.g. 2, 4 or 8"),
}
NOTHING_TO_RUN = "Nothing to run yet: drop a video, or two images of the same size, above; then press Run."
NOTHING_TO_PREVIEW = "Nothing to preview yet: drop a video, or two images of the same size, above."


def error_html(message: str | None) -> str:
    """The error box's content: the message, escaped; empty when there is none."""
    if not message:
        return ""
    return f'<div class="vfikit-error" role="alert">{html.escape(message)}</div>'


def progress_html(status: JobStatus | None) -> str:
    """The job's line (input, target, model), a progress bar with its state, frames and ETA.

    ``data-state`` is there for scripts and tests.
    """
    if status is None:
        return '<div class="vfikit-progress" data-state="none">no job yet</div>'
    percent = round(100 * status.fraction)
    job = f'<div class="vfikit-job">{html.escape(status.request.describe())}</div>' if status.request else ""
    return (
        f'<div class="vfikit-progress" data-state="{status.state}" data-done="{status.done}">{job}'
        f'<progress max="100" value="{percent}"></progress> {html.escape(status.text())}</div>'
    )


def explain(exc: BaseException) -> str:
    """A message for the page: a VfikitError's own text; for anything else its type (traceback to the console)."""
    if isinstance(exc, (VfikitError, OSError)):
        return clean_message(str(exc))
    traceback.print_exc()
    return f"internal error ({type(exc).__name__}: {exc}); the server console has the details"


def new_files(files: list[str], seen: list[str]) -> list[str]:
    """What the user just dropped: the browser adds new files after the ones already there; keep only those."""
    if len(files) > len(seen) and files[: len(seen)] == seen:
        return files[len(seen):]
    return files


@dataclass
class Widgets:
    """The page's components."""

    staged: gr.State
    seen: gr.State
    refused: gr.State
    speed: gr.State
    shown: gr.State
    job_id: gr.BrowserState
    upload: gr.File
    info: gr.Markdown
    model: gr.Dropdown
    target: gr.Radio
    target_value: gr.Textbox
    scene: gr.Checkbox
    pair_fps: gr.Textbox
    plan: gr.Markdown
    error: gr.HTML
    pair: gr.Slider
    preview_button: gr.Button
    preview: gr.ImageSlider
    caption: gr.Markdown
    run: gr.Button
    cancel: gr.Button
    progress: gr.HTML
    result: gr.Video
    animation: gr.Image
    download: gr.DownloadButton

    def poll_outputs(self) -> list[Any]:
        """What a job's status redraws; ``Page.poll`` returns one value for each, in this order."""
        return [self.progress, self.result, self.animation, self.download, self.cancel, self.error, self.shown,
                self.job_id]


class Page:
    """The handlers: each takes the components' values and returns their new values."""

    def __init__(self, manager: JobManager, choices: list[ModelChoice], previewer: Previewer, *, staging: Path,
                 upload_root: Path | None, max_bytes: int) -> None:
        self.manager = manager
        self.choices = choices
        self.previewer = previewer
        self.staging = staging
        self.upload_root = upload_root
        self.max_bytes = max_bytes

    def upload(self, files: list[str] | None, old: StagedInput | None, seen: list[str]) -> tuple:
        """A drop replaces the input: new files replace the old ones, refused or not."""
        files = list(files or [])
        if files == seen:  # our own replacement of the file list coming back
            return (gr.skip(),) * 10
        if old is not None:
            old.remove()
        fresh = new_files(files, seen)
        shown = gr.update(value=fresh) if fresh != files else gr.skip()
        hidden = gr.update(visible=False, value=0, maximum=1)
        if not fresh:
            return None, [], shown, "", hidden, gr.update(visible=False), "", None, "", ""
        try:
            staged = stage_upload(fresh, self.staging, upload_root=self.upload_root, max_bytes=self.max_bytes)
        except Exception as exc:
            message = explain(exc)
            return None, fresh, shown, "", hidden, gr.update(visible=False), error_html(message), None, "", message
        pairs = staged.pairs
        slider = gr.update(visible=pairs > 1, minimum=0, maximum=max(1, pairs - 1), value=(pairs - 1) // 2, step=1)
        info = staged.describe() + "".join(f"\n\nnote: {n}" for n in staged.notes)
        pair_fps = gr.update(visible=staged.kind == "pair")
        return staged, fresh, shown, info, slider, pair_fps, "", None, "", ""

    def preview(self, staged: StagedInput | None, label: str, pair: float | None) -> tuple:
        """The frame average and the model's middle frame of one pair; its time feeds the plan's estimate."""
        if staged is None:
            return None, "", error_html(NOTHING_TO_PREVIEW), gr.skip()
        try:
            choice = find_choice(label, self.choices)
            result = self.previewer(staged, choice.name, int(pair or 0))
        except Exception as exc:
            return None, "", error_html(explain(exc)), gr.skip()
        caption = (
            f"pair {result.pair} -> {result.pair + 1}: left, the frame average; right, the middle frame by "
            f"**{result.model}** ({result.seconds:.1f} s). Drag the handle to compare."
        )
        speed = {"model": label, "input": str(staged.folder), "seconds": result.seconds}
        return (result.average, result.middle), caption, "", speed

    def plan(self, staged: StagedInput | None, label: str, target: str, value: str, pair_fps: str,
             speed: dict | None) -> str:
        """What Run will make (frames, rates, length) and about how long it takes here."""
        if staged is None:
            return ""
        same = speed and speed["model"] == label and speed["input"] == str(staged.folder)
        try:
            text = plan_text(staged, timing_kwargs(target, value), pair_fps, speed["seconds"] if same else None)
        except VfikitError as exc:
            return f"Run needs a valid target: {exc}"
        return f"**Run will make:** {text}"

    @staticmethod
    def target_changed(target: str) -> Any:
        """The value field only for a frame rate or slow motion, labelled for the one chosen."""
        if target not in VALUE_LABELS:
            return gr.update(visible=False)
        label, placeholder = VALUE_LABELS[target]
        return gr.update(visible=True, label=label, placeholder=placeholder)

    def run(self, staged: StagedInput | None, label: str, target: str, value: str, scene: bool, pair_fps: str,
            refused: str) -> tuple:
        """Queue a job; its id goes to the browser's storage so that a reload finds it again."""
        if staged is None:
            message = f"{refused}\n\n{NOTHING_TO_RUN}" if refused else NOTHING_TO_RUN
            return gr.skip(), error_html(message), gr.skip()
        try:
            choice = find_choice(label, self.choices)
            timing = timing_kwargs(target, value)
            fps = str(pair_fps or DEFAULT_PAIR_FPS).strip()
            if staged.kind == "pair":
                timing_kwargs("frame rate", fps)  # checks the rate like --input-fps
            request = JobRequest(staged, choice.name, choice.label, timing, bool(scene), fps, target,
                                 str(value or "").strip() if target in VALUE_LABELS else "")
            job = self.manager.submit(request)
        except Exception as exc:
            return gr.skip(), error_html(explain(exc)), gr.skip()
        return job.id, "", ""

    def cancel(self, job_id: str | None) -> str:
        """Cancel this browser's job (a queued one shows cancelled at the next poll)."""
        if not self.manager.cancel(job_id):
            return error_html("there is no queued or running job to cancel")
        return ""

    def status(self, job_id: str | None) -> JobStatus | None:
        """This browser's job; for a new tab, or a job from before a restart, the active job."""
        status = self.manager.status(job_id)
        if status is None:
            active = self.manager.active()
            status = self.manager.status(active.id) if active is not None else None
        return status

    def poll(self, job_id: str | None, shown: str) -> tuple:
        """The progress bar, and when the job's state changed, its result, download and Cancel button."""
        status = self.status(job_id)
        key = status.key if status is not None else "none"
        if key == shown:
            return (progress_html(status), *(gr.skip(),) * 7)
        cancel = gr.update(interactive=status is not None and status.state in ACTIVE)
        if status is None:
            hidden = gr.update(visible=False)
            return progress_html(None), hidden, hidden, hidden, cancel, gr.skip(), key, gr.skip()
        error = error_html(status.message) if status.state == "failed" else gr.skip()
        new_id = status.id if status.id != job_id else gr.skip()
        return (progress_html(status), *result_updates(status), cancel, error, key, new_id)

    def load(self, job_id: str | None, shown: str) -> tuple:
        """A fresh page: the job as :meth:`poll` shows it, with its model and target put back in the form."""
        status = self.status(job_id)
        if status is None or status.request is None:
            return (*self.poll(job_id, shown), gr.skip(), gr.skip(), gr.skip())
        request = status.request
        value = gr.update(value=request.target_value, visible=request.target in VALUE_LABELS)
        return (*self.poll(job_id, ""), request.model_label, request.target, value)


def result_updates(status: JobStatus) -> tuple[Any, Any, Any]:
    """The video player, the animation (two images) and the download button for a job's result."""
    output = status.output
    if output is None:
        hidden = gr.update(visible=False, value=None)
        return hidden, hidden, hidden
    pair = status.request is not None and status.request.input.kind == "pair"
    if not pair:
        label = f"Download {output.name}"
    elif output.suffix == ".zip":
        label = f"Download the in-between frames as PNG ({output.name})"
    else:
        label = f"Download the in-between frame as PNG ({output.name})"
    video = gr.update(visible=not pair, value=None if pair else str(output))
    animation = gr.update(visible=pair, value=str(status.animation) if pair and status.animation else None)
    return video, animation, gr.update(visible=True, value=str(output), label=label)


def forget_copies(manager: JobManager, cache: Path, path: Path) -> None:
    """Delete the copy Gradio made of a result that is being deleted, so that its link stops working.

    Gradio keeps each file it serves in ``cache/<hash of the content>/``; a copy that an other kept
    result shares (the same bytes) stays.
    """
    from gradio.processing_utils import hash_file

    try:
        digest = hash_file(path)
        if any(hash_file(kept) == digest for kept in manager.outputs() if kept != path and kept.is_file()):
            return
    except OSError:
        return
    shutil.rmtree(cache / digest, ignore_errors=True)


def _input_column() -> dict[str, Any]:
    return {
        "upload": gr.File(label="A video, or two images", file_count="multiple", elem_id="vfikit-upload"),
        "info": gr.Markdown(elem_id="vfikit-info"),
    }


def _settings_column(choices: list[ModelChoice]) -> dict[str, Any]:
    labels = [c.label for c in choices]
    widgets = {
        "model": gr.Dropdown(labels, value=labels[0] if labels else None, label="Model", elem_id="vfikit-model"),
    }
    gr.Markdown(model_legend(choices), elem_id="vfikit-models")
    widgets["target"] = gr.Radio(list(TARGETS), value="2x", label="Target", elem_id="vfikit-target")
    widgets["target_value"] = gr.Textbox(label="target value", visible=False, elem_id="vfikit-target-value")
    widgets["scene"] = gr.Checkbox(True, label="scene-cut detection (copy frames across cuts)",
                                   elem_id="vfikit-scene")
    widgets["pair_fps"] = gr.Textbox(DEFAULT_PAIR_FPS, label="two images: frames per second of the input",
                                     visible=False, elem_id="vfikit-pair-fps")
    return widgets


def _preview_section() -> dict[str, Any]:
    with gr.Row():
        pair = gr.Slider(0, 1, value=0, step=1, label="pair to preview (frame number)", visible=False,
                         elem_id="vfikit-pair")
        button = gr.Button("Preview", elem_id="vfikit-preview-button")
    return {
        "pair": pair,
        "preview_button": button,
        "preview": gr.ImageSlider(label="frame average | model", type="numpy", format="png",
                                  elem_id="vfikit-preview"),
        "caption": gr.Markdown(elem_id="vfikit-preview-caption"),
    }


def _run_section() -> dict[str, Any]:
    with gr.Row():
        run = gr.Button("Run", variant="primary", elem_id="vfikit-run")
        cancel = gr.Button("Cancel", variant="stop", interactive=False, elem_id="vfikit-cancel")
    return {
        "run": run,
        "cancel": cancel,
        "progress": gr.HTML(progress_html(None), elem_id="vfikit-progress"),
        "result": gr.Video(label="result", interactive=False, height=400, loop=True, visible=False,
                           elem_id="vfikit-result"),
        "animation": gr.Image(label="the in-between frames, slowed down and looping", type="filepath",
                              interactive=False, visible=False, elem_id="vfikit-animation"),
        "download": gr.DownloadButton("Download", visible=False, variant="primary", elem_id="vfikit-download"),
    }


def _layout(choices: list[ModelChoice]) -> Widgets:
    """All components, top to bottom."""
    states = {
        "staged": gr.State(None, time_to_live=6 * 3600, delete_callback=lambda s: s and s.remove()),
        "seen": gr.State([]),
        "refused": gr.State(""),
        "speed": gr.State(None),
        "shown": gr.State(""),
        "job_id": gr.BrowserState(None, storage_key="vfikit-job"),
    }
    gr.Markdown(INTRO)
    with gr.Row():
        with gr.Column(scale=3):
            inputs = _input_column()
        with gr.Column(scale=2):
            settings = _settings_column(choices)
    plan = gr.Markdown(elem_id="vfikit-plan")
    error = gr.HTML(elem_id="vfikit-error")
    return Widgets(**states, **inputs, **settings, plan=plan, error=error, **_preview_section(), **_run_section())


def _wire(page: Page, w: Widgets, demo: gr.Blocks) -> None:
    """Connect the events to the handlers (none of them is offered as an API)."""
    private: dict[str, Any] = {"api_visibility": "private"}
    quiet: dict[str, Any] = {"show_progress": "hidden", **private}
    plan_inputs = [w.staged, w.model, w.target, w.target_value, w.pair_fps, w.speed]
    w.upload.change(page.upload, [w.upload, w.staged, w.seen],
                    [w.staged, w.seen, w.upload, w.info, w.pair, w.pair_fps, w.error, w.preview, w.caption,
                     w.refused], show_progress_on=[w.info], **private).then(page.plan, plan_inputs, [w.plan], **quiet)
    w.target.change(page.target_changed, [w.target], [w.target_value], **quiet)
    gr.on([w.model.change, w.target.change, w.target_value.change, w.pair_fps.change], page.plan, plan_inputs,
          [w.plan], **quiet)
    w.preview_button.click(page.preview, [w.staged, w.model, w.pair], [w.preview, w.caption, w.error, w.speed],
                           show_progress_on=[w.preview], **private).then(page.plan, plan_inputs, [w.plan], **quiet)
    w.run.click(page.run, [w.staged, w.model, w.target, w.target_value, w.scene, w.pair_fps, w.refused],
                [w.job_id, w.error, w.shown], **quiet)
    w.cancel.click(page.cancel, [w.job_id], [w.error], **quiet)
    timer = gr.Timer(0.5)
    timer.tick(page.poll, [w.job_id, w.shown], w.poll_outputs(), concurrency_limit=None, **quiet)
    demo.load(page.load, [w.job_id, w.shown], [*w.poll_outputs(), w.model, w.target, w.target_value], **quiet)


def build_app(
    manager: JobManager,
    *,
    staging: Path,
    upload_root: Path | None,
    max_bytes: int = DEFAULT_MAX_UPLOAD_MB * 2**20,
    previewer: Previewer | None = None,
    device: str = "cpu",
) -> gr.Blocks:
    """The page. ``staging``: private folder for uploaded inputs; ``upload_root``: Gradio's upload folder.

    Results the manager deletes to make room are deleted from Gradio's cache too (``forget_copies``).
    """
    choices = model_choices(device)
    page = Page(manager, choices, previewer or Previewer(), staging=staging, upload_root=upload_root,
                max_bytes=max_bytes)
    with gr.Blocks(title="vfikit", analytics_enabled=False, delete_cache=(600, 3600)) as demo:
        widgets = _layout(choices)
        _wire(page, widgets, demo)
    cache = Path(demo.GRADIO_CACHE)
    manager.on_delete = lambda path: forget_copies(manager, cache, path)
    return demo


__all__ = ["CSS", "build_app", "error_html", "new_files", "progress_html"]
