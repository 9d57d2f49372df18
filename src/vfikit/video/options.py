"""The options of one interpolation job, written once: the API, the CLI and the web page's jobs use them."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from vfikit.errors import MissingDependencyError
from vfikit.timeline.scenes import DEFAULT_CUT_THRESHOLD, DEFAULT_DUP_THRESHOLD
from vfikit.video.defaults import DEFAULT_BISECT_DEPTH

ONNX_HINT = 'pip install "vfikit[onnx]"'


def require_onnx(what: str, modules: tuple[str, ...] = ("onnx", "onnxruntime")) -> None:
    """Check up front that the ``[onnx]`` extra is installed for ``what`` (``--backend onnx``, ONNX export).

    Without it, torch's exporter ends in a traceback (``OnnxExporterError``) after the model was loaded;
    this says in one line what to install, before any work.
    """
    for name in modules:
        try:
            __import__(name)
        except ImportError:
            raise MissingDependencyError(f"{what} needs the {name} package (not installed): {ONNX_HINT}") from None


@dataclass
class InterpolateOptions:
    """How :func:`vfikit.interpolate_video` works; every field has the CLI's default.

    Model: ``model`` / ``weights``: a registered model name (``vfikit models``) and an optional
    weights file; default: the packaged model for the device (see ``vfikit.video.defaults``).
    ``allow_untrained``: accept a learned model without trained weights (its frames are garbage; for
    tests and research); refused by default. ``device`` / ``precision`` / ``tile`` / ``batch_size``:
    where and how the model runs (``tile``: "auto", an int tile size in px, or None for whole frames;
    ``precision``: "auto" (bf16 for the flow-guided models on CPUs where it is measured faster, else fp32),
    "fp32", "bf16" or "fp16" on a GPU).
    ``bisect_depth``: models without native t render the nearest k / 2**bisect_depth.
    ``backend``: ``"torch"`` or ``"onnx"`` (the flow-guided models' network through ONNX Runtime on the
    CPU, ``pip install "vfikit[onnx]"``: same frames to 1e-4, faster here; docs/benchmarks.md).

    Timing: ``factor`` / ``fps`` / ``slowmo`` (see ``vfikit.timeline.timing``; default ``factor=2``).
    ``input_fps``: frame rate of a folder of images (needed for ``fps`` or a video output).
    ``scene_threshold``: scene-cut threshold, None disables; ``dup_threshold``: 0 disables.
    ``start`` / ``duration`` / ``max_frames``: process part of the input (seconds or [hh:]mm:ss).
    ``allow_truncated``: interpolate a video that ends well before its stated length (a cut-off
    download) instead of refusing it; a note says so and the output records it (a video's
    ``comment`` tag, a folder's ``.vfikit-output.json``).

    Output: ``codec`` / ``crf`` / ``bitrate`` / ``pix_fmt`` / ``preset``: video encoding (see
    ``vfikit.video.encode``). ``ext``: suffix of the frames of a folder output (``.png``) or of each
    output of a folder of videos (default: the input's). ``audio`` / ``subtitles``: carry these
    streams over (video to video only). ``drop_alpha``: discard an alpha channel instead of refusing
    the input.

    Job: ``force``: replace an existing output (only once the new one is complete). ``resume``:
    continue an unfinished job for the same output and settings. ``progress``: show a progress bar
    on stderr. ``segment_frames``: frames per resumable video segment (default: 10 s of output).
    """

    model: str | None = None
    weights: str | Path | None = None
    allow_untrained: bool = False
    device: str | None = "auto"
    precision: str = "auto"
    tile: int | str | None = "auto"
    bisect_depth: int = DEFAULT_BISECT_DEPTH
    backend: str = "torch"
    batch_size: int = 1
    factor: int | None = None
    fps: str | float | Fraction | None = None
    slowmo: str | float | Fraction | None = None
    input_fps: str | float | Fraction | None = None
    scene_threshold: float | None = DEFAULT_CUT_THRESHOLD
    dup_threshold: float = DEFAULT_DUP_THRESHOLD
    start: str | float | None = None
    duration: str | float | None = None
    max_frames: int | None = None
    allow_truncated: bool = False
    codec: str | None = None
    crf: float | None = None
    bitrate: str | None = None
    pix_fmt: str | None = None
    preset: str | None = None
    ext: str | None = None
    audio: bool = True
    subtitles: bool = True
    drop_alpha: bool = False
    force: bool = False
    resume: bool = False
    progress: bool = True
    segment_frames: int | None = None
