"""Running one job: probe the input, plan, render through the pipeline, put the result in place.

Called by :func:`vfikit.video.api.interpolate_video` after every path and option was checked.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from vfikit import __version__
from vfikit.errors import VfikitError
from vfikit.image_files import IMAGE_SUFFIXES, check_image_depth
from vfikit.timeline.frames import ArrayFrames
from vfikit.timeline.render import Renderer, RenderStats
from vfikit.timeline.scenes import SceneDetector
from vfikit.timeline.timing import TimingSpec
from vfikit.video.defaults import describe_interpolator, model_name
from vfikit.video.encode import (
    CONTAINERS,
    CarrySpec,
    EncodeOptions,
    SegmentWriter,
    carry_plan,
    completed_segments,
    mux_output,
    resolve_encoding,
)
from vfikit.video.sources import (
    ColorInfo,
    ImageReader,
    ImagesInfo,
    TruncatedVideoError,
    VideoInfo,
    VideoReader,
    list_images,
    note,
    probe_images,
    probe_video,
)
from vfikit.video.threads import (
    FolderSink,
    VideoSink,
    check_error,
    done_frames,
    progress_bar,
    run_pipeline,
    write_array_image,
)
from vfikit.video.workspace import (
    Workspace,
    file_identity,
    partial_dir,
    replace_into_place,
    temp_path,
)

SEGMENT_SECONDS = 10


@dataclass
class VideoJobResult:
    """Outcome of one input: where it went and what was done."""

    input: Path
    output: Path
    stats: RenderStats
    seconds: float
    resumed: bool = False
    skipped: bool = False  # already complete (``resume`` of a finished output)
    error: str | None = None  # batch mode: the error that stopped this input


@dataclass(frozen=True)
class JobSettings:
    """The job's options. Those that decide which frames are made are recorded for ``resume``;
    device, precision, tile and batch size may change between runs (e.g. to get past an
    out-of-memory error)."""

    spec: TimingSpec
    detector: SceneDetector
    encode: EncodeOptions
    frame_suffix: str | None
    input_fps: Fraction | None
    start: Fraction | None
    duration: Fraction | None
    max_frames: int | None
    audio: bool
    subtitles: bool
    drop_alpha: bool
    batch_size: int
    segment_frames: int | None
    force: bool
    resume: bool
    progress: bool
    model: str = ""
    precision: str = "fp32"
    extra: dict = field(default_factory=dict)
    allow_truncated: bool = False  # interpolate a truncated video anyway (noted, and recorded in the output)


def output_kind(output: Path) -> str:
    suffix = output.suffix.lower()
    if suffix in CONTAINERS:
        return "video"
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix and not output.is_dir():
        raise VfikitError(
            f"cannot tell what to write for {output.name}: use a video suffix ({', '.join(CONTAINERS)}), "
            "an image suffix, or a folder name without a suffix"
        )
    return "folder"



def _job_record(settings: JobSettings, inputs: list[Path], out_kind: str, encode: dict | None) -> dict:
    s = settings
    return {
        "vfikit": __version__,
        "inputs": [file_identity(p) for p in inputs],
        "model": s.model,
        "weights": s.extra.get("weights"),
        "bisect_depth": s.extra.get("bisect_depth"),
        "timing": s.spec.describe(),
        "scene": [s.detector.cut_threshold, s.detector.dup_threshold],
        "window": [str(s.start), str(s.duration), s.max_frames, str(s.input_fps)],
        "output": out_kind,
        "encode": encode,
        "frames": s.frame_suffix,
        "carry": [s.audio, s.subtitles, s.drop_alpha],
        "segment_frames": s.segment_frames,
    }


# -- running one job -----------------------------------------------------------------------
def run_one(kind: str, inputs: list[Path], output: Path, settings: JobSettings, interpolator: Any) -> VideoJobResult:
    started = time.perf_counter()
    if settings.resume and output.exists() and not partial_dir(output).exists():
        note(f"{output} is already complete; nothing to do")
        return VideoJobResult(inputs[0], output, RenderStats(), 0.0, skipped=True)
    out_kind = output_kind(output)
    if kind == "video":
        info = probe_video(inputs[0], drop_alpha=settings.drop_alpha)
        if settings.start is not None and info.duration is not None and settings.start >= info.duration:
            raise VfikitError(f"--start {float(settings.start):g}s lies beyond the end of {inputs[0].name} "
                              f"(it lasts {float(info.duration):.2f}s)")
        settings.spec.check_density(info.average_rate, inputs[0].name)
        source = VideoReader(info, start=settings.start, duration=settings.duration, max_frames=settings.max_frames,
                             allow_truncated=settings.allow_truncated)
        bits, size = info.frame_bits, (info.width, info.height)
    else:
        paths = list_images(inputs[0]) if kind == "frames" else inputs
        images = probe_images(paths, drop_alpha=settings.drop_alpha)
        for text in images.notes:
            note(text)
        info = images
        rate = settings.input_fps or Fraction(1)
        settings.spec.check_density(settings.input_fps, "the images")
        source = ImageReader(images, rate=rate, drop_alpha=settings.drop_alpha, max_frames=settings.max_frames)
        bits, size = images.bits, (images.width, images.height)
    _check_model_size(interpolator, size)
    job = _Job(kind, inputs, output, info, source, bits, size, settings, interpolator, started)
    if kind == "pair" and out_kind == "image":
        return _run_pair_image(job)
    if out_kind == "video":
        return _run_to_video(job)
    return _run_to_folder(job)


@dataclass
class _Job:
    """One job once its input is probed: what the writers of each output kind need."""

    kind: str  # video, frames or pair
    inputs: list[Path]
    output: Path
    info: VideoInfo | ImagesInfo
    source: VideoReader | ImageReader
    bits: int
    size: tuple[int, int]
    settings: JobSettings
    interpolator: Any
    started: float  # time.perf_counter() at the start

    @property
    def tail(self) -> bool:
        """Whether the output runs to the end of the last input frame (videos), not to its start."""
        return self.kind == "video"


def _check_model_size(interpolator: Any, size: tuple[int, int]) -> None:
    model = getattr(interpolator, "model", interpolator)
    minimum = getattr(model, "min_size", None) or getattr(interpolator, "min_size", None)
    width, height = size
    chosen = interpolator.model_for(height, width) if hasattr(interpolator, "model_for") else model
    if chosen is not model:  # the Interpolator's second model for large frames (the default's choice)
        note(f"frames are {width}x{height}: interpolated by {model_name(chosen)}, the default's model for "
             f"frames of {interpolator.large_frames[0]} px and more (--model chooses another)")
    if minimum and (width < minimum or height < minimum):
        raise VfikitError(f"frames are {width}x{height} but {describe_interpolator(interpolator)} needs at least "
                          f"{minimum}x{minimum} pixels")


def _renderer(settings: JobSettings, interpolator: Any, bits: int, skip: int = 0) -> Renderer:
    return Renderer(
        interpolator, ArrayFrames(bits), settings.spec, detector=settings.detector,
        batch_size=settings.batch_size, skip_before=skip,
    )  # fmt: skip


def _estimate(info: VideoInfo | ImagesInfo, settings: JobSettings, tail: bool) -> int | None:
    if isinstance(info, ImagesInfo):
        n = len(info.paths)
        if settings.max_frames:
            n = min(n, settings.max_frames)
        span = Fraction(n - 1) / (settings.input_fps or 1)
        return settings.spec.estimate_count(n, span, tail=False)
    span = info.duration
    if span is not None:
        span = max(Fraction(0), span - (settings.start or 0))
        if settings.duration is not None:
            span = min(span, settings.duration)
    rate = info.average_rate
    n = None
    if span is not None and rate:
        n = math.ceil(span * rate)
    elif info.frame_count:
        n = info.frame_count
    if n is None:
        return None
    if settings.max_frames:
        n = min(n, settings.max_frames)
        span = Fraction(n) / rate if rate else span
    return settings.spec.estimate_count(max(n, 2), span, tail=tail)


def _run_pair_image(job: _Job) -> VideoJobResult:
    check_image_depth(job.output, job.bits)
    renderer = _renderer(job.settings, job.interpolator, job.bits)
    frames = list(renderer.run(iter(job.source)))
    if renderer.stats.cuts:
        note("the two images look like different shots: the middle frame is a copy of the first; "
             "pass --no-scene-detect to interpolate anyway")  # fmt: skip
    middle = frames[1][1]
    tmp = temp_path(job.output)
    job.output.parent.mkdir(parents=True, exist_ok=True)
    try:
        write_array_image(tmp, middle)
        replace_into_place(tmp, job.output)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        check_error(exc)
        raise
    _summary(job.output, renderer.stats, job.started)
    return VideoJobResult(job.inputs[0], job.output, renderer.stats, time.perf_counter() - job.started)


def _run_to_folder(job: _Job) -> VideoJobResult:
    suffix = job.settings.frame_suffix or ".png"
    if suffix not in IMAGE_SUFFIXES:
        raise VfikitError(f"frames can be written as {', '.join(IMAGE_SUFFIXES)}, not {suffix}")
    check_image_depth(suffix, job.bits)
    if job.kind == "video" and job.info.carried and (job.settings.audio or job.settings.subtitles):
        note(f"{len(job.info.carried)} audio/subtitle stream(s) are not written to a folder of frames")
    record = _job_record(job.settings, job.inputs, "folder", None)
    work = Workspace.open(job.output, record, resume=job.settings.resume, force=job.settings.force)
    names = lambda index: f"{index:08d}{suffix}"  # noqa: E731
    skip = done_frames(work.path, names) if work.resumed else 0
    renderer = _renderer(job.settings, job.interpolator, job.bits, skip)
    bar = progress_bar(_estimate(job.info, job.settings, job.tail), job.output.name, job.settings.progress)
    try:
        end = job.source.end_time if job.tail else None
        stats = run_pipeline(job.source, renderer, FolderSink(work.path, suffix, names=names), end=end, progress=bar)
        work.finish_folder(_truncation(job.source))
    except BaseException as exc:
        if isinstance(exc, TruncatedVideoError) or not done_frames(work.path, names):
            work.discard()  # nothing worth resuming
        if isinstance(exc, OSError):
            check_error(exc)
        raise
    finally:
        if bar is not None:
            bar.close()
    _report_source(job.source)
    _summary(job.output, stats, job.started)
    return VideoJobResult(job.inputs[0], job.output, stats, time.perf_counter() - job.started, resumed=work.resumed)


def _run_to_video(job: _Job) -> VideoJobResult:
    spec = job.settings.spec
    if isinstance(job.info, VideoInfo):
        source_tb, source_rate, color = job.info.time_base, job.info.average_rate, job.info.color
        pix_fmt, src_bits, rotation = job.info.pix_fmt, job.info.bits, job.info.rotation
    else:
        source_tb, source_rate = 1 / job.settings.input_fps, job.settings.input_fps
        color, pix_fmt, src_bits, rotation = ColorInfo(1, 1, 1, 1), None, job.bits, 0.0  # sRGB images: BT.709 tags
    stretch = spec.slowmo or Fraction(1)
    plan = resolve_encoding(
        job.output, job.settings.encode, width=job.size[0], height=job.size[1], source_bits=src_bits,
        source_pix_fmt=pix_fmt,
        color=color, time_base=spec.time_base(source_tb) * stretch, rate=spec.output_rate(source_rate),
        rotation=rotation,
    )  # fmt: skip
    carried = ()
    transcode: dict = {}
    if isinstance(job.info, VideoInfo) and job.info.carried:
        wanted = tuple(s for s in job.info.carried if (s.kind == "audio" and job.settings.audio) or
                       (s.kind == "subtitle" and job.settings.subtitles))  # fmt: skip
        if wanted and spec.slowmo:
            note("slow motion: audio and subtitles are not carried over (they cannot stay in sync)")
        elif wanted:
            transcode = carry_plan(plan.container, wanted)
            carried = wanted
            for index, codec in transcode.items():
                if codec:
                    note(f"audio stream #{index} is re-encoded to {codec}: {job.output.suffix} cannot hold its codec")
    if isinstance(job.info, VideoInfo) and job.info.ignored:
        note(f"not carried over: {', '.join(job.info.ignored)}")
    rate = plan.rate or Fraction(25)
    seg_frames = job.settings.segment_frames or max(1, math.ceil(SEGMENT_SECONDS * rate))
    record = _job_record(job.settings, job.inputs, "video", {**plan.as_dict(), "carry": [s.index for s in carried]})
    work = Workspace.open(job.output, record, resume=job.settings.resume, force=job.settings.force)
    done = completed_segments(work.path) if work.resumed else []
    skip = sum(seg["frames"] for seg in done)
    if done:
        note(f"resuming: {skip} output frames in {len(done)} finished segment(s) are kept")
    writer = SegmentWriter(plan, work.path, segment_frames=seg_frames, first_index=skip)
    renderer = _renderer(job.settings, job.interpolator, job.bits, skip)
    bar = progress_bar(_estimate(job.info, job.settings, job.tail), job.output.name, job.settings.progress)
    tmp = temp_path(job.output)
    try:
        end = job.source.end_time if job.tail else None
        stats = run_pipeline(job.source, renderer, VideoSink(writer, plan.time_base / stretch), end=end, progress=bar)
        segments = completed_segments(work.path)
        origin = getattr(job.source, "first_time", None) or Fraction(0)
        end_time = (job.source.end_time() if job.tail else None) or Fraction(10**9)
        carry = CarrySpec(job.inputs[0], carried, origin, end_time) if carried else None
        truncated = _truncation(job.source)
        metadata = {"comment": f"vfikit: {truncated['truncated']}"} if truncated else None
        mux_output(tmp, plan, work.path, segments, carry, transcode, metadata=metadata)
        replace_into_place(tmp, job.output)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, TruncatedVideoError) or not completed_segments(work.path):
            work.discard()  # nothing worth resuming (a truncated input would fail the same way again)
        if isinstance(exc, OSError):
            check_error(exc)
        raise
    finally:
        if bar is not None:
            bar.close()
    work.discard()
    _report_source(job.source)
    _summary(job.output, stats, job.started)
    return VideoJobResult(job.inputs[0], job.output, stats, time.perf_counter() - job.started, resumed=work.resumed)


def _truncation(source: Any) -> dict[str, str] | None:
    """What the output records about a truncated input read under ``--allow-truncated``."""
    text = getattr(source, "truncated", None)
    return {"truncated": text} if text else None


def _report_source(source: Any) -> None:
    dropped = getattr(source, "dropped", 0)
    if dropped:
        note(f"{dropped} frame(s) with non-increasing timestamps were skipped (damaged input?)")
    corrupt = getattr(source, "corrupt", 0)
    if corrupt:
        note(f"{corrupt} frame(s) were decoded with errors concealed (damaged input?)")


def _summary(output: Path, stats: RenderStats, started: float) -> None:
    seconds = time.perf_counter() - started
    note(f"wrote {output}: {stats.summary()} in {seconds:.1f}s")

