"""Frame sources: a video file (PyAV), a folder of images, or two images.

Every source yields ``(time, frame)`` with ``time`` an exact ``Fraction`` of seconds and
``frame`` an (H, W, 3) ``uint8``/``uint16`` array (see :mod:`vfikit.timeline.frames`). Video times
come from the decoded frames' timestamps, so variable-frame-rate input is timed correctly.
Everything a job needs to know before it starts (size, depth, rate, alpha, streams to carry
over) is checked up front by :func:`probe_video` / :func:`probe_images`, so bad input fails
before any work is done.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from vfikit.errors import MissingDependencyError, VfikitError
from vfikit.image_files import IMAGE_SUFFIXES, is_16bit_color, read_image

# Suffixes recognised as videos when a folder of videos is given (any file FFmpeg reads works
# when named directly).
VIDEO_SUFFIXES = (
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".wmv", ".flv", ".mpg", ".mpeg", ".m2v", ".ts",
    ".m2ts", ".mts", ".3gp", ".ogv", ".nut", ".y4m", ".gif", ".mxf", ".dv", ".vob", ".264", ".h264",
    ".265", ".hevc", ".ivf", ".asf", ".rm", ".rmvb",
)  # fmt: skip


def import_av():
    """PyAV, or a clear error naming the package."""
    try:
        import av
    except ImportError as exc:  # pragma: no cover - av is a core dependency
        raise MissingDependencyError("video support needs PyAV: pip install av") from exc
    return av


def swscale_flags(*, decode: bool):
    """YUV<->RGB conversion flags: accurate rounding and full-resolution chroma.

    FFmpeg's default conversion darkens every round trip by about one level (8-bit) and so
    re-encoded copies of source frames would drift; with these flags a decoded frame re-encodes
    and decodes back to itself (measured on real frames: mean error 0.004 levels instead of 1.2).
    It costs about 35 ms instead of 3 ms per 1080p frame on one slow CPU core, in its own thread.
    """
    from av.video.reformatter import Interpolation

    chroma = Interpolation.FULL_CHR_H_INT if decode else Interpolation.FULL_CHR_H_INP
    return Interpolation.BICUBIC | Interpolation.ACCURATE_RND | chroma


def natural_key(path: Path) -> list:
    """Sort key so that frame2.png comes before frame10.png."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


@dataclass(frozen=True)
class ColorInfo:
    """Colour tags copied from the source to the output (FFmpeg enum values)."""

    colorspace: int = 2  # unspecified (FFmpeg then uses BT.601 for RGB<->YUV)
    color_range: int = 0
    color_primaries: int = 2
    color_trc: int = 2


@dataclass(frozen=True)
class CarriedStream:
    """An audio/subtitle stream of the source that goes into the output."""

    index: int
    kind: str  # "audio" | "subtitle"
    codec: str
    language: str | None = None


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe_video` learned about a file."""

    path: Path
    format_name: str
    width: int
    height: int
    pix_fmt: str
    bits: int  # bits per component of the source (8, 10, 12, 16)
    has_alpha: bool
    time_base: Fraction
    average_rate: Fraction | None
    frame_count: int | None  # from the container; may be missing or approximate
    duration: Fraction | None  # of the video stream, seconds
    start_time: Fraction  # of the video stream, seconds
    color: ColorInfo
    rotation: float
    carried: tuple[CarriedStream, ...] = ()
    ignored: tuple[str, ...] = ()  # streams that are not carried over, described for the user
    video_duration: Fraction | None = None  # the video stream's own duration, when the file states it

    @property
    def frame_bits(self) -> int:
        """Depth of the frames the pipeline holds: 8, or 16 for anything deeper."""
        return 8 if self.bits <= 8 else 16


def _fraction(value) -> Fraction | None:
    if value is None:
        return None
    frac = Fraction(value)
    return frac if frac > 0 else None


_DURATION_TAG = re.compile(r"^(\d+):(\d{2}):(\d{2}(?:\.\d+)?)$")


def _tagged_duration(metadata: dict) -> Fraction | None:
    """A stream's own ``DURATION`` tag (``00:00:03.003000000``), as Matroska/WebM muxers write it.

    Matroska has no per-stream duration field, and with audio the container's length is the longest
    stream's, so this tag is what tells how long the video is (and so whether a copy was cut off).
    """
    match = _DURATION_TAG.match(str(metadata.get("DURATION", "")).strip())
    if match is None:
        return None
    hours, minutes, seconds = match.groups()
    value = Fraction(int(hours) * 3600 + int(minutes) * 60) + Fraction(seconds)
    return value if value > 0 else None


def probe_video(path: str | Path, *, drop_alpha: bool = False) -> VideoInfo:
    """Open ``path`` and describe its first video stream; raises VfikitError for unusable files."""
    av = import_av()
    path = Path(path)
    if not path.is_file():
        raise VfikitError(f"input not found: {path}")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise VfikitError(f"cannot read {path} as a video: {exc}") from None
    with container:
        if not container.streams.video:
            kinds = ", ".join(s.type for s in container.streams) or "no streams at all"
            raise VfikitError(f"{path} has no video stream ({kinds})")
        stream = container.streams.video[0]
        ctx = stream.codec_context
        if not ctx.width or not ctx.height or ctx.format is None:
            raise VfikitError(f"{path}: cannot determine the video size or pixel format (corrupt or unsupported file)")
        fmt = ctx.format
        bits = max(c.bits for c in fmt.components)
        has_alpha = any(c.is_alpha for c in fmt.components)
        if has_alpha and not drop_alpha:
            raise VfikitError(
                f"{path} has an alpha channel ({fmt.name}); interpolation works on RGB: pass --drop-alpha to discard it"
            )
        tb = Fraction(stream.time_base) if stream.time_base else Fraction(1, 90000)
        rate = _fraction(stream.average_rate) or _fraction(stream.guessed_rate) or _fraction(stream.base_rate)
        duration = Fraction(stream.duration) * tb if stream.duration else _tagged_duration(stream.metadata)
        video_duration = duration
        if duration is None and container.duration:
            duration = Fraction(container.duration, 1_000_000)
            if len(container.streams) == 1:  # no other stream can make the container longer
                video_duration = duration
        carried, ignored = [], []
        for s in container.streams:
            if s.index == stream.index:
                continue
            # the canonical (descriptor) name: decoders of one format can have several names (srt/subrip)
            codec = s.codec_context.codec.canonical_name if s.codec_context is not None else "unknown"
            if s.type in ("audio", "subtitle"):
                carried.append(CarriedStream(s.index, s.type, codec, s.metadata.get("language")))
            else:
                ignored.append(f"#{s.index} {s.type} ({codec})")
        try:  # decoding two frames finds corrupt files and single-frame videos before any work starts
            frames = container.decode(stream)
            first = next(frames, None)
            second = None if first is None else next(frames, None)
        except av.error.FFmpegError as exc:
            raise VfikitError(f"{path}: cannot decode the video stream: {exc}") from None
        if first is None:
            raise VfikitError(f"{path} contains no decodable video frame")
        if second is None:
            raise VfikitError(f"{path} holds a single frame; interpolation needs at least two frames, got 1")
        rotation = float(first.rotation or 0.0)
        return VideoInfo(
            path=path,
            format_name=container.format.name,
            width=ctx.width,
            height=ctx.height,
            pix_fmt=fmt.name,
            bits=bits,
            has_alpha=has_alpha,
            time_base=tb,
            average_rate=rate,
            frame_count=stream.frames or None,
            duration=duration,
            start_time=Fraction(stream.start_time or 0) * tb,
            color=ColorInfo(
                int(ctx.colorspace), int(ctx.color_range), int(ctx.color_primaries), int(ctx.color_trc)
            ),
            rotation=rotation,
            carried=tuple(carried),
            ignored=tuple(ignored),
            video_duration=video_duration,
        )


class TruncatedVideoError(VfikitError):
    """The video ends well before the length its container states (a cut-off download or copy)."""


@dataclass
class VideoReader:
    """Decodes frames of ``info.path`` with exact timestamps.

    ``start``/``duration`` (seconds from the start of the video stream) and ``max_frames``
    select a part. After iteration, :meth:`end_time` is the end of the last frame read
    (its timestamp plus its duration) and ``dropped`` counts frames discarded because their
    timestamp did not increase (broken files).

    When the frames run out before the selected part ends, by more than two frames and 1% of the
    stated length (the stated length of the video stream, else its frame count), the file is
    truncated: :class:`TruncatedVideoError` is raised, or with ``allow_truncated`` a note is
    printed and ``truncated`` describes the shortfall.

    ``plain_rgb``: 8-bit RGB with libswscale's default conversion (what the training datasets read, so
    that their samples, and the validation numbers recorded with them, stay as they were) instead of
    the video tool's exact conversion (the stream's colour range, accurate chroma interpolation, 16 bits
    for deep sources); the two differ by up to 55 levels at chroma edges.
    """

    info: VideoInfo
    start: Fraction | None = None
    duration: Fraction | None = None
    max_frames: int | None = None
    allow_truncated: bool = False
    plain_rgb: bool = False
    dropped: int = 0
    corrupt: int = 0
    truncated: str | None = None
    _last: Fraction | None = field(default=None, repr=False)
    _last_duration: Fraction | None = field(default=None, repr=False)
    _gap: Fraction | None = field(default=None, repr=False)
    first_time: Fraction | None = None

    def __iter__(self) -> Iterator[tuple[Fraction, np.ndarray]]:
        av = import_av()
        info = self.info
        tb = info.time_base
        out_format = "rgb24" if info.frame_bits == 8 else "rgb48le"
        decode_flags = swscale_flags(decode=True)
        begin = info.start_time + (self.start or 0)
        stop = None if self.duration is None else begin + self.duration
        count = seen = 0
        try:
            container = av.open(str(info.path))
        except av.error.FFmpegError as exc:
            raise VfikitError(f"cannot read {info.path} as a video: {exc}") from None
        with container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            if self.start:
                container.seek(int(begin / tb), stream=stream, backward=True, any_frame=False)
            try:
                for frame in container.decode(stream):
                    if frame.pts is None:
                        if self._last is None or self._gap is None:
                            raise VfikitError(f"{info.path}: frames without timestamps cannot be timed")
                        when = self._last + self._gap
                    else:
                        when = Fraction(frame.pts) * tb
                    seen += 1
                    if when < begin:
                        continue
                    if stop is not None and when >= stop:
                        break
                    if self._last is not None and when <= self._last:
                        self.dropped += 1
                        continue
                    if frame.is_corrupt:
                        self.corrupt += 1
                    if self._last is not None:
                        self._gap = when - self._last
                    self._last = when
                    self._last_duration = Fraction(frame.duration) * tb if frame.duration else None
                    if self.first_time is None:
                        self.first_time = when
                    if self.plain_rgb:
                        array = frame.to_ndarray(format="rgb24")
                    else:
                        array = frame.to_ndarray(
                            format=out_format, src_color_range=frame.color_range or None,
                            interpolation=decode_flags,
                            threads=1,  # deterministic, and no oversubscription: decoding has its own thread
                        )
                    yield when, np.ascontiguousarray(array)
                    count += 1
                    if self.max_frames is not None and count >= self.max_frames:
                        break
                else:  # the frames ran out before any limit: were they all there?
                    self._check_complete(seen, stop)
            except av.error.FFmpegError as exc:
                where = "the start" if self._last is None else f"{float(self._last):.3f}s"
                raise VfikitError(f"{info.path}: the video data is corrupt near {where}: {exc}") from None
        if count == 0 and self.start:
            raise VfikitError(f"--start {float(self.start):g}s lies beyond the end of {info.path.name} "
                              f"(no frame at or after it)")

    def _check_complete(self, seen: int, stop: Fraction | None) -> None:
        """Compare what was decoded with the stated length; see the class docstring."""
        info = self.info
        step = 1 / info.average_rate if info.average_rate else Fraction(1, 25)
        shortfall = None
        if info.video_duration is not None:
            expected = info.start_time + info.video_duration
            if stop is not None:
                expected = min(expected, stop)
            reached = self.end_time() or info.start_time + (self.start or 0)
            if expected - reached > max(2 * step, info.video_duration / 100):
                shortfall = (f"its frames end at {float(reached - info.start_time):.2f}s, but the file "
                             f"states {float(info.video_duration):.2f}s")
        elif info.frame_count and not self.start and seen < info.frame_count - max(2, info.frame_count // 100):
            shortfall = f"{seen} of the {info.frame_count} frames the file lists could be decoded"
        if shortfall is None:
            return
        if not self.allow_truncated:
            raise TruncatedVideoError(
                f"{info.path} is truncated or damaged: {shortfall}; the output would be short, so nothing was "
                "written (pass --allow-truncated to interpolate the frames that are there)"
            )
        self.truncated = f"{info.path.name} is truncated: {shortfall}"
        note(f"{self.truncated}; interpolating the frames that are there (--allow-truncated)")

    def end_time(self) -> Fraction | None:
        """End of the last frame read: timestamp + its duration (container value, else the last gap)."""
        if self._last is None:
            return None
        step = self._last_duration or self._gap
        if step is None:
            rate = self.info.average_rate
            step = 1 / rate if rate else Fraction(1, 25)
        # not clipped to --duration: the last frame keeps its whole duration, so every planned time
        # stays a multiple of the source time base
        return self._last + step

    def time_base(self) -> Fraction:
        """A time base in which all frame times and the end time are integers."""
        return self.info.time_base


# -- images -------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImagesInfo:
    """A checked list of images that form a sequence."""

    paths: tuple[Path, ...]
    width: int
    height: int
    bits: int  # 8 or 16 (any 16-bit image makes the whole sequence 16-bit)
    notes: tuple[str, ...] = ()


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` (hidden files skipped), in natural order."""
    found = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted((p for p in found if not p.name.startswith(".")), key=natural_key)


def probe_images(paths: list[Path], *, drop_alpha: bool = False) -> ImagesInfo:
    """Check sizes and modes of every image from its header (fast), before any work."""
    from PIL import Image, UnidentifiedImageError

    if len(paths) < 2:
        raise VfikitError(f"interpolation needs at least two frames, got {len(paths)}")
    size = None
    bits = 8
    converted: dict[str, int] = {}
    for path in paths:
        try:
            with Image.open(path) as img:
                mode, this_size = img.mode, img.size
                deep = mode.startswith("I") or (mode in ("RGB", "RGBA") and is_16bit_color(path))
        except (UnidentifiedImageError, OSError) as exc:
            raise VfikitError(f"cannot read image {path}: {exc}") from None
        if size is None:
            size = this_size
        elif this_size != size:
            raise VfikitError(
                f"{path.name} is {this_size[0]}x{this_size[1]} but {paths[0].name} is {size[0]}x{size[1]}; "
                "all frames must have the same size"
            )
        if "A" in mode and not drop_alpha:
            raise VfikitError(f"{path} has an alpha channel ({mode}); pass --drop-alpha to discard it")
        if deep:
            bits = 16
        if mode not in ("RGB", "RGBA"):
            converted[mode] = converted.get(mode, 0) + 1
    notes = tuple(f"{n} {mode} image(s) converted to RGB" for mode, n in converted.items())
    return ImagesInfo(tuple(paths), size[0], size[1], bits, notes)


def read_frame(path: Path, bits: int, *, drop_alpha: bool = False) -> np.ndarray:
    """One image as an (H, W, 3) array of the sequence's depth (8-bit images promoted exactly)."""
    tensor, _ = read_image(path, drop_alpha=drop_alpha)
    scale = 255.0 if bits == 8 else 65535.0
    array = tensor.permute(1, 2, 0).numpy() * scale + 0.5
    return np.clip(array, 0, scale).astype(np.uint8 if bits == 8 else np.uint16)


@dataclass
class ImageReader:
    """Yields the images of ``info`` timed ``i / rate``."""

    info: ImagesInfo
    rate: Fraction = Fraction(1)
    drop_alpha: bool = False
    max_frames: int | None = None

    def __iter__(self) -> Iterator[tuple[Fraction, np.ndarray]]:
        paths = self.info.paths[: self.max_frames] if self.max_frames else self.info.paths
        for i, path in enumerate(paths):
            yield Fraction(i) / self.rate, read_frame(path, self.info.bits, drop_alpha=self.drop_alpha)

    def end_time(self) -> Fraction | None:
        return None

    def time_base(self) -> Fraction:
        return 1 / self.rate


def note(message: str) -> None:
    """A one-line notice on stderr (conversions, dropped streams): never silent, never fatal."""
    print(f"vfikit: note: {message}", file=sys.stderr)
