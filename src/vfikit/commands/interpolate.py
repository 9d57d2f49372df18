"""``vfikit interpolate``: the command-line shell around :func:`vfikit.video.api.interpolate_video`.

Each flag sets one field of :class:`vfikit.video.options.InterpolateOptions` (where the defaults and
their meanings are written); ``run`` builds the options from the parsed flags.
"""

from __future__ import annotations

import argparse

from vfikit.runtime import PRECISION_CHOICES, settled_imports
from vfikit.timeline.scenes import DEFAULT_CUT_THRESHOLD, DEFAULT_DUP_THRESHOLD
from vfikit.video.defaults import DEFAULT_BISECT_DEPTH
from vfikit.video.options import InterpolateOptions

EXAMPLES = """examples:
  vfikit interpolate clip.mp4 clip-2x.mp4                 # double the frame rate, audio kept
  vfikit interpolate clip.mp4 clip-60.mp4 --fps 60        # any rational target: 24000/1001, 25, ...
  vfikit interpolate clip.mp4 slow.mp4 --slowmo 4         # 4x slow motion at the input frame rate
  vfikit interpolate a.png b.png mid.png                  # the middle frame of two images
  vfikit interpolate frames/ out/ --factor 4              # a folder of frames -> a folder
  vfikit interpolate videos/ out/ --ext .mkv              # every video of a folder (torchrun shards it)
  vfikit interpolate long.mp4 long-2x.mp4 --resume        # continue a job that was killed
see docs/video.md for every option"""


def _tile(text: str) -> int | str | None:
    if text in ("auto", "none"):
        return None if text == "none" else text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected auto, none or a size in px, got {text!r}") from None


def configure(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EXAMPLES
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="INPUT OUTPUT, or IMAGE0 IMAGE1 OUTPUT; an input is a video, a folder of frames "
                             "or a folder of videos; the output's suffix picks the format (no suffix: a folder)")
    g = parser.add_argument_group("model")
    g.add_argument("--model", help="registered model name, e.g. cdfi or cdfi.official (default: the packaged model)")
    g.add_argument("--weights", help="weights file (an official checkpoint or a .vfikit file)")
    g.add_argument("--allow-untrained", action="store_true",
                   help="accept a learned model without trained weights (garbage frames; for tests and research)")
    g.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: auto)")
    g.add_argument("--backend", default="torch", choices=("torch", "onnx"),
                   help='run a flow-guided model\'s network with torch (default) or ONNX Runtime (CPU; pip install '
                        '"vfikit[onnx]"; same frames to 1e-4, about 1.3x faster end to end at 640x480 here)')
    prec = g.add_mutually_exclusive_group()
    prec.add_argument("--precision", choices=PRECISION_CHOICES, default=InterpolateOptions.precision,
                      help="fp32 (float32 throughout), bf16, fp16 (GPU) or auto (default: the flow-guided models run "
                           "their network in bfloat16 on CPUs where it is measured faster (once per machine; 1.4x "
                           "on the dev CPU, "
                           "frames within 3e-4), float32 elsewhere)")
    for name in ("fp16", "bf16", "fp32"):
        prec.add_argument(f"--{name}", dest="precision", action="store_const", const=name,
                          help=f"same as --precision {name}")
    g.add_argument("--tile", default="auto", type=_tile,
                   help="tile size in px for frames that do not fit, 'auto' (default) or 'none'")
    g.add_argument("--bisect-depth", type=int, default=DEFAULT_BISECT_DEPTH,
                   help=f"models without native t render the nearest k/2^N (default: {DEFAULT_BISECT_DEPTH})")
    g.add_argument("--batch-size", type=int, default=1, help="frames per model call (default: 1)")

    g = parser.add_argument_group("timing")
    mode = g.add_mutually_exclusive_group()
    mode.add_argument("--factor", type=int, help="N output frames per input frame (default: 2)")
    mode.add_argument("--fps", help="target frame rate, any rational: 60, 25, 24000/1001 (decimals are exact)")
    g.add_argument("--slowmo", help="slow motion by this factor: keeps every frame, lowers the output rate")
    g.add_argument("--input-fps", help="frame rate of a folder of images (for --fps or a video output)")
    g.add_argument("--scene-threshold", type=float, default=DEFAULT_CUT_THRESHOLD,
                   help=f"scene-cut score in (0, 1] above which frames are copied, not morphed "
                        f"(default: {DEFAULT_CUT_THRESHOLD})")
    g.add_argument("--no-scene-detect", action="store_true", help="interpolate across scene cuts too")
    g.add_argument("--dup-threshold", type=float, default=DEFAULT_DUP_THRESHOLD,
                   help=f"frames closer than this are duplicates and are copied (default: {DEFAULT_DUP_THRESHOLD}; "
                        "0 disables)")
    g.add_argument("--start", help="start at this time of the input video (seconds or [hh:]mm:ss)")
    g.add_argument("--duration", help="process this much of the input video (seconds or [hh:]mm:ss)")
    g.add_argument("--max-frames", type=int, help="read at most this many input frames")
    g.add_argument("--allow-truncated", action="store_true",
                   help="interpolate a video that ends before its stated length (cut-off download) instead of "
                        "refusing it; the output records it")

    g = parser.add_argument_group("output")
    g.add_argument("--codec", help="video encoder: libx264 (default), libx265, libvpx-vp9, ffv1, ...")
    g.add_argument("--crf", type=float, help="constant quality (default: 18 for x264, 20 x265, 30 VP9)")
    g.add_argument("--bitrate", help="target bitrate instead of --crf, e.g. 8M")
    g.add_argument("--pix-fmt", help="pixel format, e.g. yuv420p, yuv420p10le (default: the source's)")
    g.add_argument("--preset", help="encoder speed preset (x264/x265/SVT-AV1)")
    g.add_argument("--ext", help="suffix of output frames (.png) or of each output of a folder of videos")
    g.add_argument("--no-audio", action="store_true", help="do not copy audio streams")
    g.add_argument("--no-subtitles", action="store_true", help="do not copy subtitle streams")
    g.add_argument("--drop-alpha", action="store_true", help="discard an alpha channel instead of refusing the input")

    g = parser.add_argument_group("job")
    g.add_argument("--force", action="store_true", help="replace an existing output (once the new one is complete)")
    g.add_argument("--resume", action="store_true", help="continue an unfinished job for the same output")
    g.add_argument("--segment-frames", type=int, help="output frames per resumable segment (default: 10 s)")
    g.add_argument("--quiet", action="store_true", help="no progress bar or notes")


def run(args: argparse.Namespace) -> int:
    import contextlib
    import io

    from vfikit.errors import VfikitError
    from vfikit.ops import warmup

    if len(args.paths) < 2:
        raise VfikitError("give an input and an output path (or two images and an output)")
    helper = (args.model is None and args.weights is None and args.device in ("auto", "cpu")
              and args.backend == "torch" and warmup.start_background_compile(args.precision))  # before torch
    with settled_imports():  # torch and the rest, without garbage collections that free nothing
        from vfikit.video.api import interpolate_video
        from vfikit.video.sources import note

    *inputs, output = args.paths
    options = InterpolateOptions(
        model=args.model, weights=args.weights, allow_untrained=args.allow_untrained, backend=args.backend,
        factor=args.factor, fps=args.fps, slowmo=args.slowmo,
        input_fps=args.input_fps, scene_threshold=None if args.no_scene_detect else args.scene_threshold,
        dup_threshold=args.dup_threshold, device=args.device,
        precision=args.precision, tile=args.tile,
        bisect_depth=args.bisect_depth,
        batch_size=args.batch_size, codec=args.codec, crf=args.crf, bitrate=args.bitrate, pix_fmt=args.pix_fmt,
        preset=args.preset, ext=args.ext, audio=not args.no_audio, subtitles=not args.no_subtitles,
        drop_alpha=args.drop_alpha, start=args.start, duration=args.duration, max_frames=args.max_frames,
        allow_truncated=args.allow_truncated,
        force=args.force, resume=args.resume, progress=not args.quiet, segment_frames=args.segment_frames,
    )  # fmt: skip
    source = inputs[0] if len(inputs) == 1 else inputs
    try:
        with contextlib.redirect_stderr(io.StringIO()) if args.quiet else contextlib.nullcontext():
            if helper:
                note("first run with these caches: the CPU kernels compile once (a helper process compiles the "
                     "largest beside the job)")
            interpolate_video(source, output, options)
    finally:
        warmup.choose_synthesis_heads(None)  # a helper the job never told (an error, another model) stops
    return 0
