"""Encoding: choosing codec settings, writing resumable segments, and the final mux.

Video output is written in *segments*: every ``segment_frames`` output frames a fresh encoder
starts (so each segment begins with a key frame and depends on nothing before it), and the
segment's packets are stored in a NUT file next to a JSON index holding each packet's exact
``pts``/``dts``/duration. A segment counts as done only once its index exists (written to a
temporary name, then renamed). The final step copies the packets of all segments, in order and
with their recorded timestamps, into the output container together with the source's audio and
subtitle packets, without re-encoding anything; so a killed job resumes at its last finished
segment and the result is identical to an uninterrupted run.

Timestamps: the first output frame is at 0 and every stream is shifted by the same amount, so
audio stays where it was relative to the picture. Each frame's pts is its exact planned time in
a time base chosen so that all times are integers (``1/F`` for ``--fps F``; the source time base
divided by N for ``--factor N``). Containers with a coarser clock (Matroska/WebM count whole
milliseconds) round, as FFmpeg does.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from vfikit.errors import VfikitError
from vfikit.runtime import write_text_atomic
from vfikit.video.sources import CarriedStream, ColorInfo, import_av, swscale_flags

# Output suffix -> FFmpeg muxer. Frame folders and images are handled elsewhere.
CONTAINERS = {
    ".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".avi": "avi",
    ".nut": "nut", ".ts": "mpegts", ".m2ts": "mpegts", ".mts": "mpegts", ".flv": "flv",
}  # fmt: skip
DEFAULT_CODECS = {"webm": "libvpx-vp9"}  # everything else: libx264
# Rate-control flags per codec: CRF option name and a sensible default.
CRF_CODECS = {"libx264": 18, "libx265": 20, "libvpx-vp9": 30, "libvpx": 10, "libsvtav1": 30, "libaom-av1": 30}
LOSSLESS_CODECS = ("ffv1", "png", "rawvideo", "utvideo", "huffyuv", "ffvhuff")
SEGMENT_FORMAT = "nut"


@dataclass(frozen=True)
class EncodeOptions:
    """The user's encoding choices (all optional)."""

    codec: str | None = None
    crf: float | None = None
    bitrate: str | None = None
    pix_fmt: str | None = None
    preset: str | None = None


@dataclass(frozen=True)
class EncodePlan:
    """Resolved, validated settings for one output video."""

    container: str
    codec: str
    pix_fmt: str
    bits: int
    options: dict[str, str]
    bit_rate: int | None
    width: int
    height: int
    time_base: Fraction  # of the written timestamps (already stretched by slow motion)
    rate: Fraction | None  # nominal frame rate, for metadata
    color: ColorInfo
    rotation: float = 0.0

    def describe(self) -> str:
        quality = f"{self.bit_rate // 1000} kb/s" if self.bit_rate else (
            f"crf {self.options['crf']}" if "crf" in self.options else "default quality"
        )
        return f"{self.codec} {self.pix_fmt} ({quality})"

    def as_dict(self) -> dict:
        return {
            "container": self.container, "codec": self.codec, "pix_fmt": self.pix_fmt, "options": self.options,
            "bit_rate": self.bit_rate, "size": [self.width, self.height], "time_base": str(self.time_base),
        }  # fmt: skip


def container_for(path: Path) -> str:
    """The FFmpeg muxer for an output path, or a VfikitError listing the supported suffixes."""
    suffix = path.suffix.lower()
    if suffix not in CONTAINERS:
        raise VfikitError(f"cannot write video {path.name}: choose one of {', '.join(CONTAINERS)}")
    return CONTAINERS[suffix]


def parse_bitrate(text: str) -> int:
    """``8M``, ``2500k``, ``800000`` -> bits per second."""
    raw = str(text).strip().lower()
    scale = {"k": 1_000, "m": 1_000_000, "g": 1_000_000_000}.get(raw[-1:], 1)
    number = raw[:-1] if scale != 1 else raw
    try:
        value = float(number) * scale
    except ValueError:
        raise VfikitError(f"invalid bitrate {text!r}: write e.g. 8M or 2500k") from None
    if value <= 0:
        raise VfikitError(f"bitrate must be positive, got {text!r}")
    return int(value)


def _subsampled(pix_fmt: str) -> tuple[bool, bool]:
    av = import_av()
    fmt = av.VideoFormat(pix_fmt, 4, 4)
    if len(fmt.components) < 2 or not fmt.components[1].is_chroma:
        return False, False
    return fmt.components[1].width < 4, fmt.components[1].height < 4


def format_bits(pix_fmt: str) -> int:
    av = import_av()
    return max(c.bits for c in av.VideoFormat(pix_fmt).components)


def resolve_encoding(
    path: Path,
    opts: EncodeOptions,
    *,
    width: int,
    height: int,
    source_bits: int,
    source_pix_fmt: str | None,
    color: ColorInfo,
    time_base: Fraction,
    rate: Fraction | None,
    rotation: float = 0.0,
) -> EncodePlan:
    """Pick and validate codec, pixel format and rate control for ``path``.

    Defaults: H.264 (VP9 for .webm) at CRF 18 (VP9: 30); the source's pixel format when the codec
    supports it, and never fewer bits than the source: a 10-bit source gets a 10-bit format or an
    error asking for ``--pix-fmt`` / ``--codec``, never a silent truncation to 8 bits.
    """
    av = import_av()
    container = container_for(path)
    codec_name = opts.codec or DEFAULT_CODECS.get(container, "libx264")
    try:
        codec = av.codec.Codec(codec_name, "w")
    except (av.error.FFmpegError, ValueError):
        raise VfikitError(f"unknown video encoder {codec_name!r} (this FFmpeg build lacks it)") from None
    if codec.type != "video":
        raise VfikitError(f"{codec_name!r} is a {codec.type} encoder, not a video encoder")
    supported = _supported_codecs(container)
    if supported and codec.canonical_name not in supported and codec_name not in supported:
        raise VfikitError(f"a {path.suffix} file cannot hold {codec_name} video; choose another --codec or container")
    formats = [f.name for f in (codec.video_formats or [])]
    pix_fmt = opts.pix_fmt or _default_pix_fmt(formats, source_bits, source_pix_fmt, codec_name)
    if formats and pix_fmt not in formats:
        raise VfikitError(f"{codec_name} cannot encode pixel format {pix_fmt!r}; choose one of {', '.join(formats)}")
    try:
        bits = format_bits(pix_fmt)
    except (ValueError, av.error.FFmpegError):
        raise VfikitError(f"unknown pixel format {pix_fmt!r}") from None
    sub_x, sub_y = _subsampled(pix_fmt)
    if (sub_x and width % 2) or (sub_y and height % 2):
        raise VfikitError(
            f"{pix_fmt} needs an even width and height, but the frames are {width}x{height}; "
            "use --pix-fmt yuv444p (or crop the input)"
        )
    options: dict[str, str] = {}
    bit_rate = None
    if opts.crf is not None and opts.bitrate is not None:
        raise VfikitError("give either --crf or --bitrate, not both")
    if opts.bitrate is not None:
        bit_rate = parse_bitrate(opts.bitrate)
    elif codec_name in CRF_CODECS:
        crf = CRF_CODECS[codec_name] if opts.crf is None else opts.crf
        if not 0 <= crf <= 63:
            raise VfikitError(f"--crf must be between 0 and 63, got {opts.crf}")
        options["crf"] = f"{crf:g}"
        if codec_name.startswith("libvpx"):
            options["b"] = "0"  # constant-quality mode
    elif opts.crf is not None:
        lossless = " (it is lossless)" if codec_name in LOSSLESS_CODECS else ""
        raise VfikitError(f"--crf does not apply to {codec_name}{lossless}; use --bitrate or a CRF codec")
    if opts.preset is not None:
        if codec_name not in ("libx264", "libx265", "libsvtav1"):
            raise VfikitError(f"--preset applies to libx264, libx265 and libsvtav1, not {codec_name}")
        options["preset"] = str(opts.preset)
    if codec_name == "libx265":
        options["x265-params"] = "log-level=error"
    if codec_name == "libsvtav1":
        os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its whole configuration otherwise (errors only)
    plan = EncodePlan(
        container=container, codec=codec_name, pix_fmt=pix_fmt, bits=bits, options=options, bit_rate=bit_rate,
        width=width, height=height, time_base=time_base, rate=rate, color=color, rotation=rotation,
    )  # fmt: skip
    _check_encoder(plan)
    return plan


def _check_encoder(plan: EncodePlan) -> None:
    """Open the encoder once with the final settings, so a bad option fails before any work."""
    av = import_av()
    ctx = av.CodecContext.create(plan.codec, "w")
    ctx.width, ctx.height, ctx.pix_fmt = plan.width, plan.height, plan.pix_fmt
    ctx.time_base = plan.time_base
    if plan.rate:
        ctx.framerate = plan.rate
    if plan.bit_rate:
        ctx.bit_rate = plan.bit_rate
    try:
        ctx.options = dict(plan.options)
        ctx.open()
    except av.error.FFmpegError as exc:
        raise VfikitError(f"the {plan.codec} encoder refused these settings ({plan.describe()}): {exc}") from None
    finally:
        del ctx


def _supported_codecs(container: str) -> set[str]:
    av = import_av()
    import io

    out = av.open(io.BytesIO(), "w", format=container)
    try:
        return set(out.supported_codecs)
    finally:
        out.close()


def _default_pix_fmt(formats: list[str], source_bits: int, source_pix_fmt: str | None, codec: str) -> str:
    if source_pix_fmt and source_pix_fmt in formats and format_bits(source_pix_fmt) >= source_bits:
        return source_pix_fmt
    preferred = ["yuv420p"] if source_bits <= 8 else ["yuv420p10le", "yuv422p10le", "yuv444p10le", "gbrp10le"]
    if source_bits > 10:
        preferred = ["yuv420p12le", "yuv444p12le", "yuv444p16le", *preferred]
    for name in preferred:
        if not formats or name in formats:
            return name
    deep = [f for f in formats if format_bits(f) >= source_bits]
    if deep:
        return deep[0]
    raise VfikitError(
        f"{codec} cannot store {source_bits}-bit video ({', '.join(formats)}); choose a deeper codec "
        f"(e.g. --codec libx265) or accept fewer bits with --pix-fmt {formats[0]}"
    )


# -- segments ------------------------------------------------------------------------------
@dataclass
class _Segment:
    number: int
    first_index: int
    container: object
    stream: object
    packets: list = field(default_factory=list)
    frames: int = 0
    durations: dict = field(default_factory=dict)  # pts -> duration: not every encoder sets packet durations


class SegmentWriter:
    """Encodes frames into numbered segment files in ``folder`` (see module docstring).

    ``write(ticks, duration_ticks, frame)`` takes the frame's pts and duration in
    ``plan.time_base`` units and an (H, W, 3) uint8/uint16 array.
    """

    def __init__(self, plan: EncodePlan, folder: Path, *, segment_frames: int, first_index: int = 0) -> None:
        self.plan = plan
        self.folder = folder
        self.segment_frames = max(1, int(segment_frames))
        self.next_index = first_index
        self.current: _Segment | None = None
        self._flags = swscale_flags(decode=False)

    @staticmethod
    def segment_name(number: int) -> str:
        return f"segment_{number:06d}"

    def write(self, ticks: int, duration_ticks: int, frame: np.ndarray) -> None:
        av = import_av()
        if self.current is None:
            self._open(self.next_index // self.segment_frames)
        seg = self.current
        src_format = "rgb24" if frame.dtype == np.uint8 else "rgb48le"
        vf = av.VideoFrame.from_ndarray(frame, format=src_format)
        vf = vf.reformat(
            format=self.plan.pix_fmt,
            dst_colorspace=self.plan.color.colorspace if self.plan.color.colorspace != 2 else None,
            dst_color_range=self.plan.color.color_range or None,
            interpolation=self._flags,
            threads=1,  # deterministic; encoding has its own thread
        )
        vf.pts = ticks
        vf.time_base = self.plan.time_base
        vf.duration = duration_ticks
        seg.durations[ticks] = duration_ticks
        self._encode(seg, vf)
        seg.frames += 1
        self.next_index += 1
        if self.next_index % self.segment_frames == 0:
            self._close_segment()

    def close(self) -> None:
        """Finish the open segment (if any)."""
        if self.current is not None:
            self._close_segment()

    def abort(self) -> None:
        """Drop the unfinished segment (its frames are redone on resume)."""
        seg, self.current = self.current, None
        if seg is not None:
            # closing an abandoned file may fail too; the error that led here is what the user sees
            with contextlib.suppress(OSError, av_errors()):
                seg.container.close()
            _remove(self.folder / f".{self.segment_name(seg.number)}.tmp.{SEGMENT_FORMAT}")

    def _open(self, number: int) -> None:
        av = import_av()
        plan = self.plan
        tmp = self.folder / f".{self.segment_name(number)}.tmp.{SEGMENT_FORMAT}"
        container = av.open(str(tmp), "w", format=SEGMENT_FORMAT)
        stream = container.add_stream(plan.codec, rate=plan.rate or Fraction(25))
        stream.width, stream.height, stream.pix_fmt = plan.width, plan.height, plan.pix_fmt
        stream.time_base = plan.time_base
        ctx = stream.codec_context
        ctx.time_base = plan.time_base
        if plan.rate:
            ctx.framerate = plan.rate
        if plan.bit_rate:
            ctx.bit_rate = plan.bit_rate
        ctx.colorspace, ctx.color_range = plan.color.colorspace, plan.color.color_range
        ctx.color_primaries, ctx.color_trc = plan.color.color_primaries, plan.color.color_trc
        stream.options = dict(plan.options)
        if _needs_global_header(plan.container):
            ctx.flags |= av.codec.context.Flags.global_header
        self.current = _Segment(number, self.next_index, container, stream)

    def _encode(self, seg: _Segment, vf) -> None:
        for packet in seg.stream.encode(vf):
            self._store(seg, packet)

    def _store(self, seg: _Segment, packet) -> None:
        # record the encoder's own timestamps before the muxer rescales or shifts them
        duration = packet.duration or seg.durations.pop(packet.pts, 0)
        seg.packets.append([packet.pts, packet.dts, duration, bool(packet.is_keyframe)])
        seg.container.mux(packet)

    def _close_segment(self) -> None:
        seg = self.current
        if seg is None:
            return
        for packet in seg.stream.encode(None):
            self._store(seg, packet)
        seg.container.close()
        name = self.segment_name(seg.number)
        tmp = self.folder / f".{name}.tmp.{SEGMENT_FORMAT}"
        final = self.folder / f"{name}.{SEGMENT_FORMAT}"
        os.replace(tmp, final)
        index = {
            "number": seg.number, "first_index": seg.first_index, "frames": seg.frames,
            "time_base": str(self.plan.time_base), "packets": seg.packets,
        }  # fmt: skip
        write_json_atomic(self.folder / f"{name}.json", index)
        self.current = None


def _needs_global_header(container: str) -> bool:
    return container in ("mp4", "mov", "matroska", "webm", "nut", "flv")


def completed_segments(folder: Path) -> list[dict]:
    """Indexes of the finished segments 0, 1, 2, ... (stops at the first gap or bad file)."""
    done = []
    number = 0
    while True:
        name = SegmentWriter.segment_name(number)
        index_path = folder / f"{name}.json"
        if not index_path.is_file() or not (folder / f"{name}.{SEGMENT_FORMAT}").is_file():
            break
        try:
            index = json.loads(index_path.read_text())
        except (OSError, ValueError):
            break
        done.append(index)
        number += 1
    return done


def write_json_atomic(path: Path, data: dict) -> None:
    write_text_atomic(path, json.dumps(data), durable=True)


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


def av_errors() -> type[BaseException]:
    return import_av().error.FFmpegError


# -- final mux -----------------------------------------------------------------------------
@dataclass(frozen=True)
class CarrySpec:
    """Source streams to copy into the output and the time window to keep (source seconds)."""

    source: Path
    streams: tuple[CarriedStream, ...]
    origin: Fraction  # source time that becomes 0 in the output
    end: Fraction  # source time after which packets are dropped


def mux_output(
    path: Path,
    plan: EncodePlan,
    folder: Path,
    segments: list[dict],
    carry: CarrySpec | None,
    transcode: dict[int, str | None] | None = None,
    metadata: dict[str, str] | None = None,
) -> dict[str, int]:
    """Write the final container at ``path`` from the segments and the carried source streams.

    ``metadata``: container tags to set (e.g. ``comment``: mp4, mov and Matroska all keep it).

    Returns counts of packets written per kind (``video``, ``audio``, ``subtitle``).
    """
    av = import_av()
    if not segments:
        raise VfikitError("nothing to write: no finished segments")
    options = {"movflags": "+faststart"} if plan.container in ("mp4", "mov") else {}
    counts = {"video": 0, "audio": 0, "subtitle": 0}
    seg_files = [folder / f"{SegmentWriter.segment_name(s['number'])}.{SEGMENT_FORMAT}" for s in segments]
    out = av.open(str(path), "w", format=plan.container, options=options)
    sources = []
    try:
        out.metadata.update(metadata or {})
        template = av.open(str(seg_files[0]))
        sources.append(template)
        vstream = out.add_stream_from_template(template.streams.video[0])
        vstream.time_base = plan.time_base
        if plan.rotation:
            vstream.set_display_rotation(plan.rotation)
        inputs: list[Iterator] = [_video_packets(seg_files, segments, vstream, plan.time_base)]
        if carry is not None and carry.streams:
            src = av.open(str(carry.source))
            sources.append(src)
            inputs.append(_carried_packets(out, src, carry, transcode or {}))
        for _, _, packet, kind in heapq.merge(*inputs, key=lambda item: (item[0], item[1])):
            out.mux(packet)
            counts[kind] += 1
        out.close()
    except BaseException as exc:
        with contextlib.suppress(OSError, av_errors()):  # the original error is re-raised below
            out.close()
        if isinstance(exc, av.error.FFmpegError) and not isinstance(exc, OSError):
            raise VfikitError(f"FFmpeg could not write {path.name}: {exc}") from exc
        raise
    finally:
        for src in sources:
            src.close()
    return counts


def _video_packets(files: list[Path], segments: list[dict], stream, time_base: Fraction) -> Iterator:
    av = import_av()
    for file, index in zip(files, segments):
        records = index["packets"]
        with av.open(str(file)) as seg:
            packets = [p for p in seg.demux(seg.streams.video[0]) if p.size]
            if len(packets) != len(records):
                raise VfikitError(f"segment {file.name} is damaged ({len(packets)} packets, index says {len(records)})")
            for packet, (pts, dts, duration, key) in zip(packets, records):
                packet.pts, packet.dts = pts, dts
                packet.duration = duration
                packet.time_base = time_base
                packet.is_keyframe = key
                packet.stream = stream
                when = dts if dts is not None else pts
                yield float(when * time_base), 0, packet, "video"


def carry_plan(container: str, streams: tuple[CarriedStream, ...]) -> dict[int, str | None]:
    """For each carried stream: None to copy its packets, or the audio encoder to re-encode with.

    Audio is re-encoded only when the output container cannot hold its codec (e.g. AAC into
    WebM becomes Opus); a subtitle format the container cannot hold is an error that names the
    alternatives, never a silent drop.
    """
    av = import_av()
    supported = _supported_codecs(container)
    plan: dict[int, str | None] = {}
    for spec in streams:
        if not supported or spec.codec in supported:
            plan[spec.index] = None
        elif spec.kind == "audio":
            import io

            with av.open(io.BytesIO(), "w", format=container) as probe:
                codec = probe.default_audio_codec
            if not codec or codec == "none":
                raise VfikitError(f"a {container} file cannot hold audio; pass --no-audio")
            plan[spec.index] = _audio_encoder(codec)
        else:
            raise VfikitError(
                f"subtitle stream #{spec.index} ({spec.codec}) cannot be stored in a {container} file; "
                "write .mkv (or .mp4 for mov_text), or pass --no-subtitles"
            )
    return plan


def _audio_encoder(codec: str) -> str:
    """The preferred encoder for an audio format (FFmpeg's native Opus/Vorbis encoders are experimental)."""
    av = import_av()
    for name in {"opus": ["libopus"], "vorbis": ["libvorbis"], "mp3": ["libmp3lame"]}.get(codec, []):
        try:
            av.codec.Codec(name, "w")
            return name
        except (av.error.FFmpegError, ValueError):
            continue
    return codec


def _carried_packets(out, src, carry: CarrySpec, transcode: dict[int, str | None]) -> Iterator:
    """Source audio/subtitle packets in the window, shifted so ``carry.origin`` becomes 0."""
    av = import_av()
    streams = {}
    for spec in carry.streams:
        in_stream = src.streams[spec.index]
        codec = transcode.get(spec.index)
        if codec is None:
            out_stream = out.add_stream_from_template(in_stream)
        else:
            rates = av.codec.Codec(codec, "w").audio_rates
            rate = in_stream.rate if not rates or in_stream.rate in rates else 48000
            out_stream = out.add_stream(codec, rate=rate, layout=in_stream.layout.name)
        streams[spec.index] = (in_stream, out_stream, spec.kind, codec)
    order = 1
    preroll: dict[int, object] = {}  # per audio stream: the last packet before the window (decoder warm-up)
    for packet in src.demux([s[0] for s in streams.values()]):
        in_stream, out_stream, kind, codec = streams[packet.stream.index]
        if packet.size == 0 or (packet.pts is None and packet.dts is None):
            if codec is not None and packet.size == 0:  # end of this stream: flush its encoder
                for frame in in_stream.decode(None):
                    yield from _encode_shifted(out_stream, frame, carry, kind, order)
                for new in out_stream.encode(None):
                    yield _when(new, out_stream), order, new, kind
            continue
        tb = Fraction(in_stream.time_base)
        pts = packet.pts if packet.pts is not None else packet.dts
        start = pts * tb
        length = (packet.duration or 0) * tb
        if start >= carry.end:
            continue
        if (start + length <= carry.origin) if length > 0 else (start < carry.origin):
            if kind == "audio":  # audio decoders need the packet before the first one they play (priming, MDCT overlap)
                preroll[packet.stream.index] = packet
            continue
        held = preroll.pop(packet.stream.index, None)
        for item in (held, packet) if held is not None else (packet,):
            order += 1
            if codec is not None:
                for frame in item.decode():
                    yield from _encode_shifted(out_stream, frame, carry, kind, order)
                continue
            shift = round(carry.origin / tb)
            item.pts = None if item.pts is None else item.pts - shift
            item.dts = None if item.dts is None else item.dts - shift
            item.stream = out_stream
            when = item.dts if item.dts is not None else item.pts
            yield float(when * tb), order, item, kind


def _encode_shifted(out_stream, frame, carry: CarrySpec, kind: str, order: int) -> Iterator:
    if frame.pts is not None:
        seconds = Fraction(frame.pts) * Fraction(frame.time_base) - carry.origin
        frame.pts = round(seconds * frame.sample_rate)
        frame.time_base = Fraction(1, frame.sample_rate)
    for packet in out_stream.encode(frame):
        yield _when(packet, out_stream), order, packet, kind


def _when(packet, stream) -> float:
    tb = packet.time_base or stream.time_base
    value = packet.dts if packet.dts is not None else (packet.pts or 0)
    return float(value * Fraction(tb))
