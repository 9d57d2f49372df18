"""``vfikit.interpolate_video``: one call for every kind of input the video tool accepts.

=====================  ======================================  ==========================================
input                  output                                  result
=====================  ======================================  ==========================================
two images             an image file (``mid.png``)             the middle frame (``--factor 2``)
two images             a folder                                all N+1 frames for ``--factor N``
a folder of images     a folder (or a video, with input fps)   the sequence, interpolated
a video file           a video file (or a folder of frames)    the video, interpolated, audio kept
a folder of videos     a folder                                each video, as above (sharded under torchrun)
=====================  ======================================  ==========================================

Every check that can fail on user input runs here, before any work starts; the work itself is in
:mod:`vfikit.video.jobs`. Every output is written under a temporary name beside its destination and
moved into place only when complete (see :mod:`vfikit.video.workspace`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from vfikit.errors import VfikitError
from vfikit.image_files import IMAGE_SUFFIXES
from vfikit.runtime import check_int, check_precision, resolve_device
from vfikit.timeline.render import RenderStats
from vfikit.timeline.scenes import SceneDetector
from vfikit.timeline.timing import TimingSpec, parse_rate, parse_time
from vfikit.video.defaults import build_interpolator, describe_interpolator
from vfikit.video.encode import CONTAINERS, EncodeOptions
from vfikit.video.jobs import JobSettings, VideoJobResult, output_kind, run_one
from vfikit.video.options import InterpolateOptions, require_onnx
from vfikit.video.sources import VIDEO_SUFFIXES, note
from vfikit.video.threads import check_error
from vfikit.video.workspace import (
    check_output_free,
    check_replaceable,
    check_writable_dir,
    file_identity,
    partial_dir,
)


def interpolate_video(
    input: str | Path | Sequence[str | Path],
    output: str | Path,
    options: InterpolateOptions | None = None,
    *,
    interpolator: Any = None,
    **overrides: Any,
) -> VideoJobResult | list[VideoJobResult]:
    """Interpolate a video, a frame folder, an image pair or a folder of videos.

    Args:
        input: a video file, a folder of images, a folder of videos, or two image paths.
        output: a video file (format from its suffix), an image file (image pair, factor 2) or a
            folder (frames or, for a folder of videos, one output per video).
        options: the job's :class:`InterpolateOptions` (model, timing, output, job); default: the CLI's.
        interpolator: a ready :class:`vfikit.Interpolator` (overrides model/weights/device/...).
        overrides: fields of :class:`InterpolateOptions` by name (``factor=4``, ``model="cdfi"``...),
            applied over ``options``.
    Returns:
        a :class:`VideoJobResult`, or a list of them for a folder of videos.
    """
    opts = replace(options or InterpolateOptions(), **overrides)
    settings = _job_settings(opts)
    inputs = [Path(input)] if isinstance(input, (str, Path)) else [Path(p) for p in input]
    output = Path(output)
    kind = _input_kind(inputs)
    jobs = _plan_jobs(kind, inputs, output, settings)
    rank, world = _shard()
    if kind != "batch" and world > 1 and rank != 0:
        note(f"rank {rank} of {world}: a single input is processed by rank 0 only")
        return []
    if kind == "batch":
        jobs = jobs[rank::world]
        if world > 1:
            note(f"rank {rank} of {world}: {len(jobs)} video(s) of this folder")
    if interpolator is None:
        if opts.backend == "onnx":
            require_onnx("--backend onnx")
        dev = str(resolve_device(opts.device))
        check_precision(opts.precision, dev)
        interpolator = build_interpolator(
            opts.model, opts.weights, device=dev, precision=opts.precision, tile=opts.tile, max_depth=opts.bisect_depth,
            allow_untrained=opts.allow_untrained, backend=opts.backend,
        )
    settings = _with_model(settings, interpolator, opts.model, opts.weights, opts.bisect_depth)
    if kind != "batch":
        try:
            return run_one(kind, inputs, jobs[0][1], settings, interpolator)
        except OSError as exc:  # a full disk anywhere (the job record too) is a user error, said plainly
            check_error(exc)
            raise
    return _run_batch(jobs, settings, interpolator)


def _job_settings(opts: InterpolateOptions) -> JobSettings:
    """The checked, parsed form of ``opts`` that the jobs run with."""
    spec = TimingSpec.make(factor=opts.factor, fps=opts.fps, slowmo=opts.slowmo)
    detector = SceneDetector(cut_threshold=opts.scene_threshold, dup_threshold=opts.dup_threshold)
    settings = JobSettings(
        spec=spec,
        detector=detector,
        encode=EncodeOptions(codec=opts.codec, crf=opts.crf, bitrate=opts.bitrate, pix_fmt=opts.pix_fmt,
                             preset=opts.preset),
        frame_suffix=None if opts.ext is None else _suffix(opts.ext),
        input_fps=None if opts.input_fps is None else parse_rate(opts.input_fps, what="input frame rate"),
        start=None if opts.start is None else parse_time(opts.start, what="start"),
        duration=None if opts.duration is None else parse_time(opts.duration, what="duration"),
        max_frames=_positive_int(opts.max_frames, "max frames"),
        audio=opts.audio,
        subtitles=opts.subtitles,
        drop_alpha=opts.drop_alpha,
        batch_size=_positive_int(opts.batch_size, "batch size") or 1,
        segment_frames=_positive_int(opts.segment_frames, "segment frames"),
        force=opts.force,
        resume=opts.resume,
        progress=opts.progress,
        allow_truncated=opts.allow_truncated,
    )
    depth = opts.bisect_depth
    check_int(depth, "bisect depth", low=1, high=20)
    if settings.max_frames == 1:
        raise VfikitError("--max-frames 1 leaves a single frame; interpolation needs at least two frames")
    if settings.duration is not None and settings.duration <= 0:
        raise VfikitError(f"duration must be positive, got {opts.duration!r}")
    if opts.weights is not None and not Path(opts.weights).is_file():
        raise VfikitError(f"weights file not found: {opts.weights}")
    return settings


def _run_batch(jobs: list[tuple[Path, Path]], settings: JobSettings, interpolator: Any) -> list[VideoJobResult]:
    """Each video of a folder in turn; one that fails is reported and the others still run (but a full
    disk stops the batch: the others would fail the same way; --resume continues it)."""
    results = []
    for number, (src, dst) in enumerate(jobs, 1):
        if settings.progress:
            note(f"[{number}/{len(jobs)}] {src.name} -> {dst}")
        try:
            results.append(run_one("video", [src], dst, settings, interpolator))
        except (VfikitError, OSError) as exc:
            check_error(exc)
            note(f"{src.name}: error: {exc}")
            results.append(VideoJobResult(src, dst, RenderStats(), 0.0, error=str(exc)))
    failed = [r for r in results if r.error]
    if failed:
        names = ", ".join(r.input.name for r in failed)
        raise VfikitError(f"{len(failed)} of {len(results)} video(s) failed: {names} (the others are done)")
    return results


# -- planning and validation ---------------------------------------------------------------
def _suffix(ext: str) -> str:
    ext = str(ext).strip().lower()
    return ext if ext.startswith(".") else f".{ext}"


def _positive_int(value: Any, what: str) -> int | None:
    if value is None:
        return None
    return check_int(value, what, low=1)


def _shard() -> tuple[int, int]:
    """(rank, world size) from torchrun's environment variables; (0, 1) otherwise."""
    try:
        rank = int(os.environ.get("RANK", "0"))
        world = int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise VfikitError(
            f"RANK/WORLD_SIZE must be integers, got {os.environ.get('RANK')!r}/{os.environ.get('WORLD_SIZE')!r}"
        ) from None
    if world < 1 or not 0 <= rank < world:
        raise VfikitError(f"invalid RANK={rank} for WORLD_SIZE={world}")
    return rank, world


def _input_kind(inputs: list[Path]) -> str:
    if len(inputs) == 2:
        for p in inputs:
            if not p.is_file():
                raise VfikitError(f"input not found: {p}")
            if p.suffix.lower() not in IMAGE_SUFFIXES:
                raise VfikitError(f"two inputs must be two images ({', '.join(IMAGE_SUFFIXES)}), got {p.name}")
        return "pair"
    if len(inputs) != 1:
        raise VfikitError(f"give one input (video, folder) or two images, got {len(inputs)}")
    path = inputs[0]
    if path.is_dir():
        files = [p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")]
        images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
        videos = [p for p in files if p.suffix.lower() in VIDEO_SUFFIXES]
        if images and videos:
            raise VfikitError(f"{path} holds both images and videos; put frames and videos in separate folders")
        if images:
            return "frames"
        if videos:
            return "batch"
        raise VfikitError(f"{path} holds no images ({', '.join(IMAGE_SUFFIXES)}) and no videos")
    if not path.exists():
        raise VfikitError(f"input not found: {path}")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        raise VfikitError(f"{path} is a single image; give two images (or a folder of frames)")
    return "video"


def _same_or_inside(a: Path, b: Path) -> bool:
    a, b = a.resolve(), b.resolve()
    return a == b or b in a.parents


def _plan_jobs(kind: str, inputs: list[Path], output: Path, settings: JobSettings) -> list[tuple[Path, Path]]:
    """Validate paths and return (input, output) pairs; nothing is written here."""
    for src in inputs:
        if _same_or_inside(output, src) or _same_or_inside(src, output):
            raise VfikitError(f"output {output} is (or contains, or is inside) the input {src}; choose another path")
    if kind == "batch":
        if output_kind(output) != "folder":
            raise VfikitError(f"a folder of videos needs an output folder, got {output.name}")
        videos = sorted(
            (p for p in inputs[0].iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES),
            key=lambda p: p.name,
        )
        jobs = []
        for video in videos:
            suffix = settings.frame_suffix or video.suffix.lower()
            dst = output / (video.stem if suffix in IMAGE_SUFFIXES else video.stem + suffix)
            if suffix not in CONTAINERS and suffix not in IMAGE_SUFFIXES:
                raise VfikitError(f"cannot write {video.name} as {suffix}: choose --ext from {', '.join(CONTAINERS)}")
            jobs.append((video, dst))
        taken = [dst for _, dst in jobs if dst.exists() and not (settings.resume and not partial_dir(dst).exists())]
        if taken and not settings.force:
            raise VfikitError(
                f"{len(taken)} output(s) already exist, e.g. {taken[0]}; pass --force to replace them "
                "(or --resume to skip finished ones)"
            )
        for dst in taken:
            check_replaceable(dst, folder=dst.suffix.lower() not in CONTAINERS)
        check_writable_dir(output)
        return jobs
    out_kind = output_kind(output)
    if kind == "pair" and out_kind == "image" and settings.spec.factor != 2:
        raise VfikitError(
            f"an image output holds one frame, but {settings.spec.describe()} makes more: give an output folder"
        )
    if out_kind == "image" and kind != "pair":
        raise VfikitError(f"{output.name} is an image; a {kind} input needs a video or folder output")
    if kind == "pair" and settings.spec.fps is not None and settings.input_fps is None:
        raise VfikitError("--fps with two images needs --input-fps (the time between them)")
    if kind in ("pair", "frames") and (settings.start is not None or settings.duration is not None):
        raise VfikitError("--start/--duration apply to video input; use --max-frames for image folders")
    if kind in ("pair", "frames") and out_kind == "video" and settings.input_fps is None:
        raise VfikitError("writing images to a video needs --input-fps (the frame rate of the images)")
    if kind in ("pair", "frames") and settings.spec.fps is not None and settings.input_fps is None:
        raise VfikitError("--fps with a folder of images needs --input-fps (their frame rate)")
    folder = out_kind == "folder"
    if folder and output.is_file():  # a file of the user's: never "already complete", never replaced
        check_replaceable(output, folder=True)
    if settings.resume and output.exists() and not partial_dir(output).exists():
        return [(inputs[0], output)]  # already complete: jobs.run_one reports it
    check_output_free(output, force=settings.force, resume=settings.resume, folder=folder)
    check_writable_dir(output.parent)
    return [(inputs[0], output)]


def _with_model(settings: JobSettings, interpolator: Any, model: str | None, weights: Any, depth: int) -> JobSettings:
    name = model or describe_interpolator(interpolator)
    model_obj = getattr(interpolator, "model", None)
    native = bool(getattr(interpolator, "arbitrary_t", getattr(model_obj, "arbitrary_t", False)))
    extra = {
        "weights": file_identity(Path(weights)) if weights is not None else None,
        "bisect_depth": None if native else depth,
    }
    return replace(settings, model=name, extra=extra)


__all__ = ["InterpolateOptions", "VideoJobResult", "interpolate_video"]
