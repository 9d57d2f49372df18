"""The renderer: source frames in, planned output frames out, in order.

:class:`Renderer` joins a :class:`~vfikit.timeline.timing.Planner`, a
:class:`~vfikit.timeline.scenes.SceneDetector` and an interpolator. For every output frame it
decides what to do:

* a source frame (``t == 0``) or a hold after the last frame: copy it unchanged;
* across a scene cut or between duplicate frames: copy the nearest source frame;
* otherwise: ask the interpolator for time ``t``. Models with ``arbitrary_t`` render the exact
  ``t``; others render the nearest time that ``interpolator.reachable_t(t)`` reports (t = 0.5 and,
  through recursive bisection, k / 2**d); a reachable time of 0 or 1 is a copy.

Model calls are batched: up to ``batch_size`` frames that share a time are stacked (for
midpoint-only models with ``interp_many``: up to ``batch_size`` pairs that need the same set of
times, all in one call that shares the bisection tree). The window of pending frames is flushed as
soon as one key has a full batch (or 8 batches are pending, or 64 frames per batch are held), and
plans are made frame by frame, so memory grows neither with the length of the input nor with the
density of the plan (a pair with more frames than that is rendered in pieces).

:func:`interpolate_frames` is the public generator over float tensors (also attached to
``vfikit.Interpolator`` as ``frames``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import torch

from vfikit.errors import VfikitError
from vfikit.runtime import check_int
from vfikit.timeline.frames import FrameKind, TensorFrames, check_tensor_frame
from vfikit.timeline.scenes import PairKind, SceneDetector, Signature, nearest_side
from vfikit.timeline.timing import OutputFrame, Planner, TimingSpec, parse_rate


@dataclass
class RenderStats:
    """What happened, for the summary line and for tests."""

    source_frames: int = 0
    output_frames: int = 0
    interpolated: int = 0
    copied: int = 0
    skipped: int = 0  # already done in an earlier (resumed) run
    cuts: list[Fraction] = field(default_factory=list)  # source times where a new shot starts
    duplicates: int = 0  # source pairs detected as duplicates
    model_calls: int = 0

    def summary(self) -> str:
        cuts = len(self.cuts)
        text = (
            f"{self.source_frames} source frames -> {self.output_frames} output frames "
            f"({self.interpolated} interpolated, {self.copied} copied"
        )
        if self.skipped:
            text += f", {self.skipped} already done"
        return text + f"); {cuts} scene cut{'s' if cuts != 1 else ''}, {self.duplicates} duplicate pair(s)"


@dataclass
class _Source:
    index: int
    time: Fraction
    frame: Any
    sig: Signature | None


@dataclass
class _Slot:
    out: OutputFrame
    frame: Any = None
    job: tuple[Any, Any, float] | None = None  # (frame0, frame1, t) waiting for the model
    computed: bool = False


WINDOW_FRAMES = 64  # times the batch size: the most output frames the renderer holds at once (about)


@dataclass
class _Window:
    """Output frames waiting to be handed on, in order, and the model work among them."""

    slots: list[_Slot] = field(default_factory=list)
    units: list[tuple[tuple[float, ...], list[_Slot]]] = field(default_factory=list)  # (times, slots of a pair)
    counts: dict[tuple[float, ...], int] = field(default_factory=dict)  # units per set of times

    def add(self, slots: list[_Slot], units: list[tuple[tuple[float, ...], list[_Slot]]]) -> None:
        self.slots += slots
        for unit in units:
            self.units.append(unit)
            self.counts[unit[0]] = self.counts.get(unit[0], 0) + 1

    def ready(self, batch_size: int, max_slots: int) -> bool:
        """A full batch for some set of times, a bounded number of model units when sets rarely
        repeat, or a bounded number of frames (long stretches of copies)."""
        if len(self.slots) >= max_slots:
            return True
        return bool(self.units) and (max(self.counts.values()) >= batch_size or len(self.units) >= 8 * batch_size)


def _reachable(interpolator: Any) -> Callable[[float], float]:
    fn = getattr(interpolator, "reachable_t", None)
    if fn is None:
        return lambda t: t
    return fn


class Renderer:
    """Turns a stream of ``(time, frame)`` into ``(OutputFrame, frame)`` pairs.

    Args:
        interpolator: callable ``(frame0, frame1, t) -> frame_t`` on (B, 3, H, W) float tensors in
            [0, 1] (a :class:`vfikit.Interpolator`), optionally with ``reachable_t(t) -> t'``.
        kind: how frames are held (:class:`~vfikit.timeline.frames.ArrayFrames` or ``TensorFrames``).
        spec: the timing plan.
        detector: scene-cut / duplicate detection (``None``: treat every pair as motion).
        batch_size: frames per model call.
        skip_before: output frames with a smaller index are planned but not computed; they are
            yielded with ``None`` as the frame (used to resume a job).
        end: end of the last source frame (exclusive); ``None`` for image sequences.
    """

    def __init__(
        self,
        interpolator: Any,
        kind: FrameKind,
        spec: TimingSpec,
        *,
        detector: SceneDetector | None = None,
        batch_size: int = 1,
        skip_before: int = 0,
    ) -> None:
        check_int(batch_size, "batch size", low=1)
        self.interpolator = interpolator
        self.kind = kind
        self.spec = spec
        self.detector = detector if detector is not None and detector.enabled else None
        self.batch_size = batch_size
        self.skip_before = skip_before
        self.reachable = _reachable(interpolator)
        # midpoint-only models: all times of a pair in one call that shares the bisection tree
        self.share_pairs = hasattr(interpolator, "interp_many") and not getattr(interpolator, "arbitrary_t", True)
        self.stats = RenderStats()
        self.size: tuple[int, int] | None = None
        # output frames held before they are handed on: bounds memory however dense the plan
        self.max_window = WINDOW_FRAMES * batch_size

    def run(
        self, frames: Iterable[tuple], end: Fraction | Callable[[], Fraction | None] | None = None
    ) -> Iterator[tuple[OutputFrame, Any]]:
        """Yield every planned output frame in order.

        ``frames`` yields ``(time, frame)`` or ``(time, frame, signature)``. ``end`` may be a
        callable evaluated once the input is exhausted (a video reader learns the last frame's
        duration only then).
        """
        planner = Planner(self.spec)
        window = _Window()
        prev: _Source | None = None
        for index, item in enumerate(frames):
            when, frame = item[0], item[1]
            self._check_size(frame, index)
            sig = None
            if self.detector is not None:  # a source may have computed it already (in its own thread)
                sig = item[2] if len(item) > 2 else self.kind.signature(frame)
            cur = _Source(index, when, frame, sig)
            self.stats.source_frames += 1
            kind = PairKind.MOTION
            if prev is not None and self.detector is not None:
                kind, _ = self.detector.classify(prev.sig, sig)
                if kind is PairKind.CUT:
                    self.stats.cuts.append(when)
                elif kind is PairKind.DUPLICATE:
                    self.stats.duplicates += 1
            pair: list[_Slot] = []  # the output frames between prev and cur (a very dense plan: in pieces)
            for out in planner.add(when):
                pair.append(self._decide(out, prev, cur, kind))
                if len(pair) >= self.max_window:
                    window.add(pair, self._units([s for s in pair if s.job is not None]))
                    pair = []
                    yield from self._flush(window)
                    window = _Window()
            window.add(pair, self._units([s for s in pair if s.job is not None]))
            prev = cur
            if window.ready(self.batch_size, self.max_window):
                yield from self._flush(window)
                window = _Window()
        if prev is None or self.stats.source_frames < 2:
            raise VfikitError(f"interpolation needs at least two frames, got {self.stats.source_frames}")
        end_time = end() if callable(end) else end
        for out in planner.finish(end_time):  # holds: copies of the last frame
            window.add([self._decide(out, prev, None, PairKind.MOTION)], [])
            if len(window.slots) >= self.max_window:
                yield from self._flush(window)
                window = _Window()
        yield from self._flush(window)

    # -- internals -------------------------------------------------------------------------
    def _check_size(self, frame: Any, index: int) -> None:
        size = self.kind.size(frame)
        if self.size is None:
            self.size = size
        elif size != self.size:
            raise VfikitError(
                f"frame {index} is {size[1]}x{size[0]} but earlier frames are {self.size[1]}x{self.size[0]}; "
                "all frames must have the same size"
            )

    def _decide(self, out: OutputFrame, left: _Source, right: _Source | None, kind: PairKind) -> _Slot:
        if out.index < self.skip_before:
            return _Slot(out, frame=None)
        if out.is_source or right is None:  # the planner only emits holds after the last frame
            return _Slot(out, frame=left.frame)
        if kind is not PairKind.MOTION:
            return _Slot(out, frame=(left, right)[nearest_side(out.t)].frame)
        t = float(self.reachable(float(out.t)))
        if t <= 0.0:
            return _Slot(out, frame=left.frame)
        if t >= 1.0:
            return _Slot(out, frame=right.frame)
        return _Slot(out, job=(left.frame, right.frame, t))

    def _units(self, jobs: list[_Slot]) -> list[tuple[tuple[float, ...], list[_Slot]]]:
        """Split one pair's model jobs into batchable units.

        Models with native t batch best across pairs by time (one unit per frame). Midpoint-only
        models go through recursive bisection, so all times of one pair form one unit and share the
        bisection tree (``Interpolator.interp_many``).
        """
        if not jobs:
            return []
        if self.share_pairs:
            return [(tuple(s.job[2] for s in jobs), jobs)]
        return [((s.job[2],), [s]) for s in jobs]

    def _flush(self, window: _Window) -> Iterator[tuple[OutputFrame, Any]]:
        groups: dict[tuple[float, ...], list[list[_Slot]]] = {}
        for key, slots in window.units:
            groups.setdefault(key, []).append(slots)
        for times, members in groups.items():
            for i in range(0, len(members), self.batch_size):
                chunk = members[i : i + self.batch_size]
                f0 = self._to_device(self.kind.to_model([m[0].job[0] for m in chunk]))
                f1 = self._to_device(self.kind.to_model([m[0].job[1] for m in chunk]))
                try:
                    with torch.inference_mode():
                        if self.share_pairs:
                            results = self.interpolator.interp_many(f0, f1, list(times))
                        else:
                            results = [self.interpolator(f0, f1, times[0])]
                except RuntimeError as exc:
                    raise self._explain(exc) from exc
                self.stats.model_calls += 1
                for k, result in enumerate(results):
                    for slots, frame in zip(chunk, self.kind.from_model(result)):
                        slots[k].frame, slots[k].job, slots[k].computed = frame, None, True
                self.stats.interpolated += len(chunk) * len(times)
        for slot in window.slots:
            self.stats.output_frames += 1
            if slot.out.index < self.skip_before:
                self.stats.skipped += 1
            elif not slot.computed:
                self.stats.copied += 1
            yield slot.out, slot.frame

    def _to_device(self, batch: torch.Tensor) -> torch.Tensor:
        """Move a batch to a CUDA interpolator's device (pinned, asynchronous); results then come
        back as 8/16-bit integers, a quarter of the float traffic."""
        device = getattr(self.interpolator, "device", None)
        if isinstance(device, torch.device) and device.type == "cuda":
            return batch.pin_memory().to(device, non_blocking=True)
        return batch

    def _explain(self, exc: RuntimeError) -> Exception:
        """Out-of-memory errors get advice; other errors pass through unchanged."""
        text = str(exc)
        if "out of memory" in text.lower():
            return VfikitError(f"the model ran out of memory on {self.size[1]}x{self.size[0]} frames: "
                               "use --tile 512 (or smaller), --batch-size 1, or --fp16/--bf16")  # fmt: skip
        return exc


def interpolate_frames(
    interpolator: Any,
    frames: Iterable[torch.Tensor | tuple[Any, torch.Tensor]],
    *,
    factor: int | None = None,
    fps: str | float | Fraction | None = None,
    input_fps: str | float | Fraction | None = None,
    end: float | Fraction | None = None,
    scene_threshold: float | None = None,
    dup_threshold: float = 0.0,
    batch_size: int = 1,
) -> Iterator[tuple[Fraction, torch.Tensor]]:
    """Interpolate a stream of frames, yielding ``(timestamp, frame)`` pairs in order.

    Args:
        interpolator: a :class:`vfikit.Interpolator` (or any callable ``(frame0, frame1, t)`` on
            (B, 3, H, W) float tensors, optionally with ``reachable_t``).
        frames: (3, H, W) float tensors in [0, 1], or ``(timestamp_seconds, frame)`` pairs with
            strictly increasing timestamps (variable frame rate is fine). Bare tensors are
            timed ``i / input_fps`` (``input_fps`` defaults to 1, i.e. times count frames).
        factor / fps: ``factor=N`` puts N-1 new frames in every interval; ``fps=F`` samples the
            grid ``t0 + j / F`` (give ``input_fps`` or timestamps). Default: ``factor=2``.
        end: end time of the last frame; frames up to it repeat the last one (video semantics).
            ``None`` stops at the last frame (image-sequence semantics).
        scene_threshold: enable scene-cut detection with this threshold (see ``vfikit.timeline.scenes``;
            the CLI default is 0.12). ``dup_threshold``: copy instead of interpolating between
            near-identical frames (0 disables).
        batch_size: frames per model call.
    Yields:
        ``(Fraction seconds, (3, H, W) float32 tensor)``; source frames are yielded unchanged.

    Example::

        interp = vfikit.Interpolator(vfikit.create_model("overlay"))
        for when, frame in interpolate_frames(interp, [f0, f1, f2], factor=4):
            ...  # 9 frames at 0, 1/4, ..., 2
    """
    spec = TimingSpec.make(factor=factor, fps=fps)
    rate = Fraction(1) if input_fps is None else parse_rate(input_fps, what="input frame rate")
    spec.check_density(None if input_fps is None else rate, "the input")

    def timed() -> Iterator[tuple[Fraction, torch.Tensor]]:
        for i, item in enumerate(frames):
            if isinstance(item, tuple):
                if len(item) != 2:
                    raise VfikitError(f"item {i} must be a frame or a (timestamp, frame) pair, got a {len(item)}-tuple")
                when, frame = item
                when = when if isinstance(when, Fraction) else Fraction(str(when))
            else:
                if spec.fps is not None and input_fps is None:
                    raise VfikitError("fps= needs timestamps: pass (timestamp, frame) pairs or input_fps=")
                when, frame = Fraction(i) / rate, item
            yield when, check_tensor_frame(frame, i)

    detector = SceneDetector(cut_threshold=scene_threshold, dup_threshold=dup_threshold)
    renderer = Renderer(interpolator, TensorFrames(), spec, detector=detector, batch_size=batch_size)
    end_time = None if end is None else (end if isinstance(end, Fraction) else Fraction(str(end)))
    for out, frame in renderer.run(timed(), end_time):
        yield out.time, frame
