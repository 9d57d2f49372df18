"""Decode -> interpolate -> encode, overlapped with two threads and bounded queues.

One thread decodes source frames into a queue, the calling thread runs the renderer (the model;
PyTorch releases the GIL while it computes), and one thread encodes or writes finished frames.
Both queues are bounded, so memory stays the same for a clip of ten frames or ten hours. An
error in any stage stops the others and is re-raised in the caller; the sinks only ever leave
whole, finished pieces behind (see :mod:`vfikit.video.workspace`).
"""

from __future__ import annotations

import itertools
import queue
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from vfikit.errors import VfikitError
from vfikit.image_files import check_image_depth
from vfikit.runtime import atomic_path
from vfikit.timeline.render import Renderer, RenderStats
from vfikit.timeline.timing import OutputFrame
from vfikit.video.encode import SegmentWriter

_END = object()


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class Sink(Protocol):
    def write(self, out: OutputFrame, frame: Any) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


class VideoSink:
    """Feeds a :class:`SegmentWriter`: converts planned times to integer ticks from the first frame."""

    def __init__(self, writer: SegmentWriter, tick: Fraction) -> None:
        self.writer = writer
        self.base = tick  # source-clock seconds per output tick (differs from the time base in slow motion)
        self.origin: Fraction | None = None

    def _ticks(self, value: Fraction) -> int:
        ticks = value / self.base
        if ticks.denominator != 1:  # cannot happen for plans made by TimingSpec.time_base
            raise RuntimeError(f"time {value} is not a multiple of the time base {self.base}")
        return int(ticks)

    def write(self, out: OutputFrame, frame: np.ndarray | None) -> None:
        if self.origin is None:
            self.origin = out.time
        if frame is None:  # finished in an earlier run
            return
        self.writer.write(self._ticks(out.time - self.origin), self._ticks(out.duration), frame)

    def close(self) -> None:
        self.writer.close()

    def abort(self) -> None:
        self.writer.abort()


class FolderSink:
    """Writes numbered images (``00000000.png``, ...) into ``folder``, each via a temporary name."""

    def __init__(self, folder: Path, suffix: str = ".png", *, names: Callable[[int], str] | None = None) -> None:
        self.folder = folder
        self.suffix = suffix
        self.names = names or (lambda index: f"{index:08d}{suffix}")

    def write(self, out: OutputFrame, frame: np.ndarray | None) -> None:
        if frame is None:
            return
        write_array_image(self.folder / self.names(out.index), frame)

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


def done_frames(folder: Path, names: Callable[[int], str]) -> int:
    """How many numbered frames from 0 on already exist (each was renamed into place whole)."""
    count = 0
    while (folder / names(count)).is_file():
        count += 1
    return count


def write_array_image(path: Path, frame: np.ndarray) -> None:
    """Write an (H, W, 3) uint8/uint16 array; PNG/TIFF keep 16 bits, other formats refuse uint16.
    Temporary name, then rename."""
    import cv2

    check_image_depth(path, 16 if frame.dtype == np.uint16 else 8)
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if path.suffix.lower() in (".jpg", ".jpeg") else []
    ok, data = cv2.imencode(path.suffix.lower(), np.ascontiguousarray(frame[..., ::-1]), params)
    if not ok:
        raise VfikitError(f"cannot encode a frame as {path.suffix}")
    # written by Python, not by cv2.imwrite: a full disk is then an OSError that says so (ENOSPC), not False
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.tobytes())


def _put(q: queue.Queue, item: Any, stop: threading.Event) -> bool:
    """Put ``item`` once there is room; give up (False) when ``stop`` is set, so that no thread waits
    forever on a queue that nobody reads any more."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _feed(items: Iterable[Any], q: queue.Queue, stop: threading.Event) -> None:
    try:
        for item in items:
            if not _put(q, item, stop):
                return
        _put(q, _END, stop)
    except BaseException as exc:
        _put(q, _Failure(exc), stop)


def _drain(q: queue.Queue, stop: threading.Event) -> Iterator[Any]:
    while True:
        try:
            item = q.get(timeout=0.1)
        except queue.Empty:
            if stop.is_set():
                return
            continue
        if item is _END:
            return
        if isinstance(item, _Failure):
            raise item.exc
        yield item


def run_pipeline(
    source: Iterable[tuple[Fraction, Any]],
    renderer: Renderer,
    sink: Sink,
    *,
    end: Callable[[], Fraction | None] | Fraction | None = None,
    progress: Any = None,
    queue_size: int = 4,
) -> RenderStats:
    """Run the three stages until the source is exhausted; returns the renderer's statistics.

    ``progress`` is anything with ``update(n)`` (a tqdm bar) or None.
    """
    stop = threading.Event()
    decoded: queue.Queue = queue.Queue(maxsize=max(2, queue_size))
    rendered: queue.Queue = queue.Queue(maxsize=max(2, 2 * queue_size))
    writer_error: list[BaseException] = []

    def write_all() -> None:
        try:
            for out, frame in _drain(rendered, stop):
                sink.write(out, frame)
                if progress is not None:
                    progress.update(1)
        except BaseException as exc:
            writer_error.append(exc)
            stop.set()

    if renderer.detector is not None:  # scene-detection summaries are made in the decode thread
        kind = renderer.kind
        source = ((when, frame, kind.signature(frame)) for when, frame in source)
    decoder = threading.Thread(target=_feed, args=(source, decoded, stop), name="vfikit-decode", daemon=True)
    writer = threading.Thread(target=write_all, name="vfikit-encode", daemon=True)
    decoder.start()
    writer.start()
    ok = False
    try:
        for item in itertools.chain(renderer.run(_drain(decoded, stop), end), [_END]):
            while True:  # a writer that failed reads no more: check it while waiting for room
                if writer_error:
                    raise writer_error[0]
                try:
                    rendered.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
        writer.join()
        if writer_error:
            raise writer_error[0]
        sink.close()
        ok = True
    finally:
        if not ok:
            stop.set()
            writer.join(timeout=30)
            sink.abort()
        stop.set()
        decoder.join(timeout=30)
    return renderer.stats


LOG_INTERVAL = 30.0  # seconds between progress lines when stderr is a log file, not a terminal


def progress_bar(total: int | None, desc: str, enabled: bool) -> Any:
    """A tqdm bar on stderr (frames done, frames/s, ETA), or None when disabled.

    When stderr is not a terminal (a log file, a pipe) every refresh is a new line, so the bar
    shows the first frame as soon as it is out, then refreshes every ``LOG_INTERVAL`` seconds there
    instead of ten times a second. A stream that reads the bar live (the web page's) asks for its own
    interval with a ``progress_interval`` attribute (seconds).
    """
    if not enabled:
        return None
    from tqdm import tqdm

    class Bar(tqdm):
        def update(self, n: float | None = 1) -> bool | None:
            if self.n:
                return super().update(n)
            interval, self.mininterval = self.mininterval, 0  # the first frame out is shown at once
            try:
                return super().update(n)
            finally:
                self.mininterval = interval

    interval = getattr(sys.stderr, "progress_interval", None)
    if interval is None:
        interval = 0.1 if _is_terminal(sys.stderr) else LOG_INTERVAL
    return Bar(total=total, desc=desc, unit="frame", file=sys.stderr, dynamic_ncols=True, smoothing=0.05,
               mininterval=interval, delay=1e-6)  # a positive delay: no empty "0 frames" line before it


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def check_error(exc: BaseException) -> None:
    """Turn a full disk into a clear VfikitError; other errors pass through."""
    import errno

    if isinstance(exc, OSError) and getattr(exc, "errno", None) == errno.ENOSPC:
        raise VfikitError(f"disk full while writing ({exc}); finished work is kept, free space and rerun with --resume")
