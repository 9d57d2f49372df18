"""Server-side jobs for the web page: a queue, one job at a time, progress with ETA, cancel.

Each job runs :func:`vfikit.interpolate_video` (exactly what ``vfikit interpolate`` runs) in a child
process, so that cancel is immediate (the process ends; the library writes outputs under a temporary
name and moves them into place only when complete, so nothing half-written is left) and a crash
cannot take the page down. The child's stderr, where the library writes its progress bar and notes,
is turned into events for the page. Jobs belong to the server, not to a browser tab: reloading the page
picks a running job up again by its id.
"""

from __future__ import annotations

import io
import multiprocessing
import queue
import re
import shutil
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vfikit.errors import VfikitError
from vfikit.ui.core import DEFAULT_PAIR_FPS, StagedInput, target_suffix
from vfikit.video.options import InterpolateOptions

ACTIVE = ("queued", "running")
FINISHED = ("done", "failed", "cancelled")

# tqdm's line: "name:  50%|#####     | 6/12 [00:01<00:01,  5.00frame/s]" (no total: "name: 6frame [00:01, ...]")
_BAR = re.compile(r"(?:\|\s*(\d+)/(\d+)|:\s*(\d+)frames?)\s*\[")
_NOTE = "vfikit: note: "


@dataclass
class JobRequest:
    """What to run: the input, the model (None: the default) and ``interpolate_video`` timing arguments.

    ``target``/``target_value``: the page's choice as shown (to put it back after a reload).
    """

    input: StagedInput
    model: str | None
    model_label: str
    timing: dict[str, Any]
    scene_detect: bool = True
    pair_fps: str = DEFAULT_PAIR_FPS
    target: str = "2x"
    target_value: str = ""

    def source(self) -> str | list[str]:
        """The input as :func:`vfikit.interpolate_video` takes it: a video path or the image paths."""
        return str(self.input.paths[0]) if self.input.kind == "video" else [str(p) for p in self.input.paths]

    def download_name(self) -> str:
        """The result's name without suffix, after the input: ``car-turn-2x``, ``a-b-4x``."""
        return f"{self.input.stem}-{target_suffix(self.timing)}"

    def describe(self) -> str:
        """One line: input, target, model."""
        target = self.target + (f" {self.target_value}" if self.target_value else "")
        return f"{', '.join(self.input.names)} \u2192 {target} with {self.model_label}"

    def options(self) -> InterpolateOptions:
        """The job's options: the CLI's defaults, with this request's model and timing."""
        from vfikit.timeline.scenes import DEFAULT_CUT_THRESHOLD

        return InterpolateOptions(
            model=self.model,
            **self.timing,
            input_fps=self.pair_fps if self.input.kind == "pair" else None,
            scene_threshold=DEFAULT_CUT_THRESHOLD if self.scene_detect else None,
            device="auto",
            progress=True,
        )


@dataclass
class JobStatus:
    """A snapshot of a job for the page."""

    id: str
    state: str  # queued, running, done, failed, cancelled
    done: int
    total: int | None
    eta: float | None  # seconds, once frames are coming out
    elapsed: float
    ahead: int  # jobs before this one: the running one and those queued earlier
    message: str  # the error, or the summary line
    output: Path | None  # the download: an MP4, or for two images a PNG or a zip of PNGs
    request: JobRequest | None = None
    animation: Path | None = None  # two images: the looping animated PNG

    @property
    def key(self) -> str:
        """Changes whenever the page must redraw more than the progress bar."""
        return f"{self.id}:{self.state}:{self.output is not None}"

    @property
    def fraction(self) -> float:
        if self.state == "done":
            return 1.0
        return min(1.0, self.done / self.total) if self.total else 0.0

    def text(self) -> str:
        """One line: state, frames, ETA."""
        if self.state == "queued":
            return f"queued: {self.ahead} job(s) ahead" if self.ahead else "queued"
        if self.state == "running":
            if not self.done:
                return f"starting (loading the model)... {self.elapsed:.0f} s"
            total = f"/{self.total}" if self.total else ""
            eta = f", ETA {format_seconds(self.eta)}" if self.eta is not None else ""
            return f"running: {self.done}{total} frames, {self.elapsed:.0f} s{eta}"
        if self.state == "done":
            return f"done in {format_seconds(self.elapsed)}: {self.message}"
        if self.state == "cancelled":
            return "cancelled"
        return f"failed: {self.message}"


def format_seconds(seconds: float | None) -> str:
    """``42 s`` or ``3 min 05 s``."""
    if seconds is None:
        return "?"
    seconds = max(0, round(seconds))
    return f"{seconds} s" if seconds < 60 else f"{seconds // 60} min {seconds % 60:02d} s"


@dataclass
class Job:
    """A job and what is known about it; changed only by the manager's worker thread (and cancel)."""

    id: str
    request: JobRequest
    folder: Path
    state: str = "queued"
    done: int = 0
    total: int | None = None
    created: float = field(default_factory=time.monotonic)
    started: float | None = None
    finished: float | None = None
    first_progress: tuple[float, int] | None = None  # (time, frames) when frames started coming out
    message: str = ""
    notes: list[str] = field(default_factory=list)
    output: Path | None = None
    animation: Path | None = None
    cancel_requested: bool = False

    def eta(self, now: float) -> float | None:
        """Seconds left from the frame rate since the first frames (model loading excluded)."""
        if self.first_progress is None or not self.total or self.done >= self.total:
            return 0.0 if self.total and self.done >= self.total else None
        t0, n0 = self.first_progress
        if self.done <= n0 or now <= t0:
            return None
        rate = (self.done - n0) / (now - t0)
        return (self.total - self.done) / rate


class _EventStream(io.TextIOBase):
    """The child's stderr: tqdm updates become ("progress", done, total), other lines ("note", text)."""

    progress_interval = 0.25  # seconds: the library's progress bar refreshes this often for the page

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.pending = ""
        self.last: tuple[int, int | None] | None = None

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        self.pending += text
        *complete, self.pending = re.split(r"[\r\n]", self.pending)
        for line in complete:
            self._line(line, final=True)
        self._line(self.pending, final=False)  # tqdm writes "\r" + bar: the current bar has no end yet
        return len(text)

    def _line(self, line: str, *, final: bool) -> None:
        match = _BAR.search(line)
        if match:
            done = int(match.group(1) or match.group(3))
            total = int(match.group(2)) if match.group(2) else None
            if (done, total) != self.last:
                self.last = (done, total)
                self.conn.send(("progress", done, total))
        elif final and line.strip():
            text = line.strip()
            self.conn.send(("note", text[len(_NOTE):] if text.startswith(_NOTE) else text))

    def flush(self) -> None:
        pass


def _child_main(request: JobRequest, folder: Path, conn: Any) -> None:
    """Runs in the job's process: ``interpolate_video`` for the request, reporting through ``conn``.

    A video becomes ``NAME.mp4``; two images become frames that :func:`pair_downloads` packages.
    """
    from tqdm import tqdm

    tqdm.set_lock(threading.RLock())  # not tqdm's default process lock: a cancelled job would leak its semaphore
    stream = _EventStream(conn)
    sys.stderr = stream
    try:
        from vfikit.ui.results import pair_downloads
        from vfikit.video.api import interpolate_video

        name = request.download_name()
        if request.input.kind == "video":
            output, animation = folder / f"{name}.mp4", None
            result = interpolate_video(request.source(), str(output), request.options())
        else:
            frames = folder / "frames"
            result = interpolate_video(request.source(), f"{frames}/", request.options())
            output, animation = pair_downloads(frames, request.input.paths, folder, name, result.stats.interpolated)
        stream.write("\n")
        conn.send(("done", result.stats.summary(), result.stats.output_frames, str(output),
                   str(animation) if animation else None))
    except (VfikitError, OSError) as exc:  # the CLI prints these as "error: <message>"
        conn.send(("error", str(exc)))
    except BaseException as exc:  # reported to the page as one line; the traceback goes to the console
        traceback.print_exc(file=sys.__stderr__)
        conn.send(("error", f"internal error ({type(exc).__name__}: {exc}); the server console has the details"))
    finally:
        conn.close()


class JobManager:
    """Runs submitted jobs one at a time, in order; jobs and their outputs live under ``root``.

    ``keep``: finished jobs whose outputs are kept (older ones are deleted). ``start_method``: how the
    child process starts ("spawn": a clean interpreter, safe next to the web server's threads).
    """

    def __init__(self, root: Path, *, keep: int = 3, start_method: str = "spawn", poll: float = 0.1,
                 on_delete: Callable[[Path], None] | None = None) -> None:
        self.root = Path(root)
        self.keep = keep
        self.poll = poll
        self.on_delete = on_delete  # told of each result file just before it is deleted (the page's copies go too)
        self._ctx = multiprocessing.get_context(start_method)
        self._jobs: dict[str, Job] = {}
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self._closed = False

    # -- the page's calls ------------------------------------------------------------------
    def submit(self, request: JobRequest) -> Job:
        """Queue a job; its input is copied into the job's own folder (the upload may be replaced)."""
        if self._closed:
            raise VfikitError("the server is shutting down")
        job_id = uuid.uuid4().hex
        folder = self.root / job_id
        folder.mkdir(mode=0o700, parents=True)
        staged = request.input.copy_to(folder / "input")
        job = Job(job_id, JobRequest(staged, request.model, request.model_label, dict(request.timing),
                                     request.scene_detect, request.pair_fps, request.target, request.target_value),
                  folder)
        with self._lock:
            self._jobs[job_id] = job
            if self._worker is None:
                self._worker = threading.Thread(target=self._loop, name="vfikit-ui-jobs", daemon=True)
                self._worker.start()
        self._queue.put(job)
        return job

    def get(self, job_id: str | None) -> Job | None:
        """The job with this id, or None (unknown, or malformed id)."""
        if not isinstance(job_id, str):
            return None
        with self._lock:
            return self._jobs.get(job_id)

    def active(self) -> Job | None:
        """The running job, else the first queued one, else None."""
        with self._lock:
            jobs = sorted((j for j in self._jobs.values() if j.state in ACTIVE), key=lambda j: j.created)
        running = [j for j in jobs if j.state == "running"]
        return (running or jobs or [None])[0]

    def status(self, job_id: str | None) -> JobStatus | None:
        """A snapshot of the job for the page, or None."""
        job = self.get(job_id)
        if job is None:
            return None
        now = time.monotonic()
        with self._lock:
            ahead = sum(1 for j in self._jobs.values()
                        if j.state == "running" or (j.state == "queued" and j.created < job.created))
        end = job.finished or now
        return JobStatus(
            id=job.id,
            state=job.state,
            done=job.done,
            total=job.total,
            eta=job.eta(now) if job.state == "running" else None,
            elapsed=(end - job.started) if job.started else 0.0,
            ahead=ahead if job.state == "queued" else 0,
            message=job.message,
            output=job.output if job.state == "done" else None,
            request=job.request,
            animation=job.animation if job.state == "done" else None,
        )

    def outputs(self) -> list[Path]:
        """The result files of finished jobs that are still kept."""
        with self._lock:
            jobs = [j for j in self._jobs.values() if j.state == "done"]
        return [p for j in jobs for p in (j.output, j.animation) if p is not None]

    def cancel(self, job_id: str | None) -> bool:
        """Stop a job: a queued one is cancelled at once, a running one as soon as its process ends.

        False when there is nothing to cancel.
        """
        job = self.get(job_id)
        with self._lock:
            if job is None or job.state not in ACTIVE:
                return False
            job.cancel_requested = True
            queued = job.state == "queued"
            if queued:
                job.state = "cancelled"  # the worker skips it
        if queued:
            self._finish(job, "cancelled")
        return True

    def wait(self, job_id: str, timeout: float) -> JobStatus | None:
        """Block until the job has finished (or ``timeout`` seconds); its status."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            job = self.get(job_id)
            if job is None or job.state in FINISHED:
                break
            time.sleep(0.05)
        return self.status(job_id)

    def close(self) -> None:
        """Cancel everything, stop the worker and delete every job folder."""
        self._closed = True
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            job.cancel_requested = True
        self._queue.put(None)
        if self._worker is not None:
            self._worker.join(timeout=15)
        shutil.rmtree(self.root, ignore_errors=True)

    # -- the worker ------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            with self._lock:
                if job.state != "queued":  # cancelled while it waited
                    continue
                job.state, job.started = "running", time.monotonic()
            try:
                self._run(job)
            except Exception as exc:  # never let the worker die: the next jobs still run
                traceback.print_exc()
                self._finish(job, "failed", f"internal error ({type(exc).__name__}: {exc})")

    def _run(self, job: Job) -> None:
        receiver, sender = self._ctx.Pipe(duplex=False)
        process = self._ctx.Process(target=_child_main, args=(job.request, job.folder, sender), daemon=True)
        process.start()
        sender.close()
        outcome: tuple[str, str] | None = None
        try:
            while outcome is None:
                if job.cancel_requested:
                    _stop(process)
                    outcome = ("cancelled", "")
                    break
                try:
                    ready = receiver.poll(self.poll)
                    event = receiver.recv() if ready else None
                except (EOFError, OSError):  # the child is gone
                    process.join(timeout=5)
                    outcome = ("failed", f"the job stopped unexpectedly (exit code {process.exitcode})")
                    break
                if event is not None:
                    outcome = self._event(job, event)
        finally:
            receiver.close()
            if process.is_alive():
                _stop(process)
        self._finish(job, *outcome)

    def _event(self, job: Job, event: tuple) -> tuple[str, str] | None:
        kind = event[0]
        if kind == "progress":
            job.done, job.total = event[1], event[2]
            if job.first_progress is None and job.done > 0:
                job.first_progress = (time.monotonic(), job.done)
        elif kind == "note":
            job.notes.append(job.request.input.clean(str(event[1]).replace(str(job.folder) + "/", "")))
        elif kind == "done":
            job.done = job.total = event[2]
            output, animation = Path(event[3]), (Path(event[4]) if event[4] else None)
            if output.is_file():
                job.output, job.animation = output, animation
                return ("done", event[1])
            return ("failed", "the job finished without writing its output")
        elif kind == "error":
            return ("failed", job.request.input.clean(str(event[1])))
        return None

    def _finish(self, job: Job, state: str, message: str = "") -> None:
        job.message, job.finished = message, time.monotonic()
        job.request.input.remove()  # the input copy is not needed any more
        if state != "done":
            job.output = job.animation = None
            shutil.rmtree(job.folder, ignore_errors=True)
        self._prune(job if state == "done" else None)
        job.state = state  # last: whoever sees this job done sees the older results already pruned

    def _prune(self, newest: Job | None) -> None:
        """Delete the outputs of all but the ``keep`` newest finished jobs (and, by ``on_delete``, their copies)."""
        with self._lock:
            done = [j for j in self._jobs.values() if j.state == "done" and j.output is not None and j is not newest]
            finished = sorted(done + ([newest] if newest else []), key=lambda j: j.finished or 0.0)
            pruned = finished[: max(0, len(finished) - self.keep)]
            files = [p for j in pruned for p in (j.output, j.animation) if p is not None]
            for job in pruned:
                job.output = job.animation = None
                job.message += " (the result was deleted to make room for newer jobs)"
        for path in files:
            if self.on_delete is not None:
                self.on_delete(path)
        for job in pruned:
            shutil.rmtree(job.folder, ignore_errors=True)


def _stop(process: Any) -> None:
    process.terminate()
    process.join(timeout=5)
    if process.is_alive():
        process.kill()
        process.join(timeout=5)
