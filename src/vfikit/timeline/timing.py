"""Exact frame-rate plans: which output frames exist, when, and between which source frames.

Every time here is a ``fractions.Fraction`` of seconds, so plans never drift: the 10 000th frame
of a 24000/1001 -> 60 conversion is exactly where it should be. A plan is streaming: it is fed
source timestamps one at a time (variable frame rate is handled by timestamps, never by
counting frames) and emits :class:`OutputFrame` records.

Modes (exactly one):

* ``factor=N``: every source interval ``[t_i, t_{i+1})`` gets N evenly spaced output frames
  ``t_i + k (t_{i+1} - t_i) / N``, k = 0..N-1 (k = 0 is the source frame itself).
* ``fps=F``: output frames on the grid ``t_0 + j / F``; a frame between ``t_i`` and ``t_{i+1}``
  is rendered at ``t = (T - t_i) / (t_{i+1} - t_i)``.

The *tail* decides what happens after the last source frame. A video frame is shown for a
duration, so with ``end`` given (the end of the last frame) the output covers the same time
span as the input: frames in ``[t_last, end)`` repeat the last frame ("hold"), which keeps the
duration and the audio alignment (``--factor N`` on n frames gives exactly n*N frames). Image
sequences are instants: without ``end`` the plan stops at the last source frame
((n-1)*N + 1 frames for ``--factor N``).

``slowmo=S`` stretches presentation times by S (playback S times slower); the depicted
instants are unchanged.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

from vfikit.errors import VfikitError
from vfikit.runtime import check_int

_TIMECODE = re.compile(r"^(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)$")
MAX_DENSITY = 1024  # output frames per source frame (--factor, or --fps over the input's rate) at most


def parse_rate(value: str | int | float | Fraction, *, what: str = "frame rate") -> Fraction:
    """Parse a positive rational rate: ``60``, ``23.976``, ``24000/1001``, ``30000:1001``.

    Decimals are taken exactly as written (``29.97`` is 2997/100; NTSC is ``30000/1001``).
    """
    if isinstance(value, Fraction):
        rate = value
    elif isinstance(value, bool):
        raise VfikitError(f"invalid {what} {value!r}")
    elif isinstance(value, int):
        rate = Fraction(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise VfikitError(f"invalid {what} {value!r}")
        rate = Fraction(str(value))
    else:
        text = str(value).strip().replace(":", "/")
        try:
            if "/" in text:
                num, den = text.split("/", 1)
                rate = Fraction(Fraction(num.strip()), Fraction(den.strip()))
            else:
                rate = Fraction(text)
        except (ValueError, ZeroDivisionError):
            raise VfikitError(f"invalid {what} {value!r}: write e.g. 60, 23.976 or 24000/1001") from None
    if rate <= 0:
        raise VfikitError(f"{what} must be positive, got {value!r}")
    return rate


def parse_time(value: str | int | float | Fraction, *, what: str = "time") -> Fraction:
    """Parse a non-negative time in seconds: ``12.5``, ``90``, ``1:30``, ``0:01:30.5``, ``1001/30000``."""
    if isinstance(value, (int, float, Fraction)) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            raise VfikitError(f"invalid {what} {value!r}")
        seconds = Fraction(str(value)) if isinstance(value, float) else Fraction(value)
    else:
        text = str(value).strip()
        match = _TIMECODE.match(text)
        try:
            if match:
                hours, minutes, secs = match.groups()
                seconds = Fraction(int(hours or 0) * 3600 + int(minutes) * 60) + Fraction(secs)
            elif "/" in text:
                num, den = text.split("/", 1)
                seconds = Fraction(Fraction(num), Fraction(den))
            else:
                seconds = Fraction(text)
        except (ValueError, ZeroDivisionError):
            raise VfikitError(f"invalid {what} {value!r}: write seconds (12.5) or [hh:]mm:ss[.xx]") from None
    if seconds < 0:
        raise VfikitError(f"{what} must not be negative, got {value!r}")
    return seconds


@dataclass(frozen=True)
class OutputFrame:
    """One planned output frame.

    ``time`` is the instant it depicts (source clock, seconds); ``left`` the index of the source
    frame at or before it; ``t`` in [0, 1) its position between source ``left`` and ``left + 1``
    (0 means it *is* source ``left``); ``hold`` marks frames after the last source frame, which
    repeat it. ``duration`` is how long it is shown, before slow motion.
    """

    index: int
    time: Fraction
    left: int
    t: Fraction
    duration: Fraction
    hold: bool = False

    @property
    def is_source(self) -> bool:
        """True when the frame is a source frame (or a hold of one): no interpolation needed."""
        return self.t == 0 or self.hold


@dataclass(frozen=True)
class TimingSpec:
    """What the user asked for: ``factor`` or ``fps`` (exactly one), and optional ``slowmo``.

    With only ``slowmo=S`` given, the factor defaults to S when S is an integer (all source
    frames kept, output at the input rate, S times slower).
    """

    factor: int | None = None
    fps: Fraction | None = None
    slowmo: Fraction | None = None

    @classmethod
    def make(
        cls,
        factor: int | None = None,
        fps: str | int | float | Fraction | None = None,
        slowmo: str | int | float | Fraction | None = None,
    ) -> TimingSpec:
        """Validate user values; with nothing given, ``factor=2``."""
        if factor is not None and fps is not None:
            raise VfikitError(f"give either --factor ({factor}) or --fps ({fps}), not both")
        slow = None if slowmo is None else parse_rate(slowmo, what="slow-motion factor")
        if slow is not None and slow <= 1:
            raise VfikitError(f"slow-motion factor must be greater than 1, got {slowmo!r}")
        if factor is not None:
            check_int(factor, "--factor", low=2)
            if factor > MAX_DENSITY:
                raise VfikitError(f"--factor {factor} is more than the {MAX_DENSITY} output frames per source frame "
                                  "vfikit makes; choose a smaller factor")
            return cls(factor=factor, slowmo=slow)
        if fps is not None:
            return cls(fps=parse_rate(fps, what="target frame rate"), slowmo=slow)
        if slow is not None:
            if slow.denominator != 1:
                raise VfikitError(
                    f"--slowmo {slowmo} is not an integer; also give --factor N or --fps F "
                    "to say how many frames to make"
                )
            return cls.make(factor=int(slow), slowmo=slow)
        return cls(factor=2)

    def check_density(self, source_rate: Fraction | None, source: str) -> None:
        """Refuse an ``fps`` that makes more than :data:`MAX_DENSITY` output frames per source frame.

        ``source_rate``: the input's (average) frame rate, None when unknown (nothing to check). A
        target like ``--fps 1e9`` would otherwise run for days and never finish a segment.
        """
        if self.fps is None or not source_rate or self.fps <= source_rate * MAX_DENSITY:
            return
        raise VfikitError(
            f"--fps {float(self.fps):g} makes {float(self.fps / source_rate):.0f} output frames per frame of "
            f"{source} ({float(source_rate):g} fps); at most {MAX_DENSITY} are made, so --fps at most "
            f"{float(source_rate * MAX_DENSITY):g} here"
        )

    def describe(self) -> str:
        base = f"factor {self.factor}" if self.factor else f"{fraction_text(self.fps)} fps"
        return base + (f", slow motion x{fraction_text(self.slowmo)}" if self.slowmo else "")

    def output_rate(self, source_rate: Fraction | None) -> Fraction | None:
        """Nominal output frame rate (after slow motion); None when unknown."""
        if self.fps is not None:
            rate = self.fps
        elif source_rate is None:
            return None
        else:
            rate = source_rate * self.factor
        return rate / self.slowmo if self.slowmo else rate

    def time_base(self, source_time_base: Fraction) -> Fraction:
        """A time base in which every planned time (relative to the first frame) is an integer.

        ``source_time_base`` must make every source timestamp (relative to the first) and the
        last frame's duration integers.
        """
        if self.fps is not None:
            return 1 / self.fps
        return source_time_base / self.factor

    def estimate_count(self, n_source: int, span: Fraction | None, *, tail: bool) -> int | None:
        """Expected number of output frames for ``n_source`` frames covering ``span`` seconds."""
        if self.factor is not None:
            return n_source * self.factor if tail else (n_source - 1) * self.factor + 1
        if span is None:
            return None
        count = span * self.fps
        return math.ceil(count) if tail else math.floor(count) + 1


def fraction_text(value: Fraction | None) -> str:
    """``60`` or ``24000/1001``."""
    if value is None:
        return "?"
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


class Planner:
    """Streams output frames for a sequence of source timestamps.

    Call :meth:`add` with each source frame's time (strictly increasing), then :meth:`finish`.
    Each call returns an iterator over the output frames that lie before the newest source time;
    it makes them one at a time (an interval may hold millions at a dense ``fps``), and must be
    used up before the next call.
    """

    def __init__(self, spec: TimingSpec) -> None:
        self.spec = spec
        self._times: list[Fraction] = []  # only the last one is kept
        self._count = 0  # source frames seen
        self._next_index = 0
        self._t0: Fraction | None = None
        self._next_j = 0  # fps mode: next grid index
        self._last_duration = Fraction(1)  # duration of the latest emitted frame

    @property
    def first_time(self) -> Fraction | None:
        return self._t0

    def add(self, time: Fraction) -> Iterator[OutputFrame]:
        """Register source frame ``time``; returns output frames in [previous time, time)."""
        if self._t0 is None:
            self._t0 = time
            self._times = [time]
            self._count = 1
            return iter(())
        prev = self._times[-1]
        if time <= prev:
            raise VfikitError(f"source timestamps must increase: {float(time):.6f}s follows {float(prev):.6f}s")
        left = self._count - 1
        out = self._between(prev, time, left, hold=False)
        self._times = [time]
        self._count += 1
        return out

    def finish(self, end: Fraction | None = None) -> Iterator[OutputFrame]:
        """Frames from the last source frame on: up to ``end`` (exclusive, holds) or just the last frame."""
        if self._t0 is None:
            return iter(())
        last = self._times[-1]
        left = self._count - 1
        if end is None:
            if self.spec.factor is not None:
                return iter([self._emit(last, left, Fraction(0), self._last_duration, hold=False)])
            grid = self._grid(self._next_j)
            if grid == last:
                self._next_j += 1
                return iter([self._emit(last, left, Fraction(0), 1 / self.spec.fps, hold=False)])
            return iter(())
        if end <= last:
            raise VfikitError(f"end time {float(end):.6f}s is not after the last frame at {float(last):.6f}s")
        return self._between(last, end, left, hold=True)

    # -- internals -------------------------------------------------------------------------
    def _grid(self, j: int) -> Fraction:
        return self._t0 + Fraction(j) / self.spec.fps

    def _between(self, start: Fraction, stop: Fraction, left: int, *, hold: bool) -> Iterator[OutputFrame]:
        """The frames in [start, stop), made one at a time as they are asked for."""
        span = stop - start
        if self.spec.factor is not None:
            n = self.spec.factor
            for k in range(n):
                t = Fraction(k, n)
                frame_t = Fraction(0) if hold else t
                yield self._emit(start + span * t, left, frame_t, span / n, hold=hold and k > 0)
            return
        step = 1 / self.spec.fps
        while (when := self._grid(self._next_j)) < stop:
            self._next_j += 1
            if when >= start:  # always true after the first frame; kept for clarity
                t = Fraction(0) if hold else (when - start) / span
                yield self._emit(when, left, t, step, hold=hold and when > start)

    def _emit(self, when: Fraction, left: int, t: Fraction, duration: Fraction, *, hold: bool) -> OutputFrame:
        frame = OutputFrame(self._next_index, when, left, t, duration, hold)
        self._next_index += 1
        self._last_duration = duration
        return frame


def plan_times(
    source_times: list[Fraction], spec: TimingSpec, end: Fraction | None = None
) -> list[OutputFrame]:
    """The whole plan for a known list of source times (convenience for tests and dry runs)."""
    planner = Planner(spec)
    out: list[OutputFrame] = []
    for when in source_times:
        out += planner.add(Fraction(when))
    return out + list(planner.finish(end))
