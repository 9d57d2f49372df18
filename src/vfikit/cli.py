"""Command-line entry point: ``vfikit <command> ...``; each command lives in its own module.

A command module provides ``configure(parser)`` and ``run(args) -> int``. Only the chosen
command's module is imported, so ``vfikit --help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from vfikit import __version__
from vfikit.errors import VfikitError

COMMANDS: dict[str, tuple[str, str]] = {
    "interpolate": ("vfikit.commands.interpolate",
                    "interpolate a video, a frame folder, two images or a folder of videos"),
    "models": ("vfikit.commands.models", "list the model zoo: architectures, parameters, weight tags"),
    "eval": ("vfikit.commands.eval", "score a model on a benchmark (PSNR, SSIM, IE, LPIPS)"),
    "bench": ("vfikit.commands.bench", "measure latency, memory, parameters and MACs"),
    "compress": ("vfikit.commands.compress", "compression-driven design: OBProxSG, report, compact model, fine-tune"),
    "train": ("vfikit.commands.train", "train a model from a YAML config or packaged recipe"),
    "export": ("vfikit.commands.export", "write a guided model's network as ONNX (for ONNX Runtime or TensorRT)"),
    "ui": ("vfikit.commands.ui", "a local web page: drop a video or two images, preview, run, download"),
}


def _top_parser() -> argparse.ArgumentParser:
    lines = "\n".join(f"  {name:<12} {help_}" for name, (_, help_) in COMMANDS.items())
    p = argparse.ArgumentParser(
        prog="vfikit",
        description="Kernel-based video frame interpolation.",
        epilog=f"commands:\n{lines}\n\nRun `vfikit COMMAND --help` for the options of a command.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"vfikit {__version__}")
    p.add_argument("command", nargs="?", help="one of the commands below")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 runtime failure, 2 usage or input error)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        parser = _top_parser()
        args = parser.parse_args(argv[:1] if argv else [])
        if args.command is not None:
            parser.error(f"unknown command {args.command!r}; choose from {', '.join(COMMANDS)}")
        parser.print_help()
        return 0 if not argv else 2
    name = argv[0]
    module = importlib.import_module(COMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"vfikit {name}", description=COMMANDS[name][1])
    module.configure(parser)
    args = parser.parse_args(argv[1:])
    try:
        return int(module.run(args) or 0)
    except VfikitError as exc:
        if os.environ.get("VFIKIT_DEBUG"):
            raise
        print(f"vfikit {name}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if os.environ.get("VFIKIT_DEBUG"):
            raise
        print(f"vfikit {name}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"vfikit {name}: interrupted", file=sys.stderr)
        return 130


def entry() -> int:
    """The ``vfikit`` console script (and ``python -m vfikit``): :func:`main`, then ``gc.freeze()``, so that the
    interpreter's exit does not walk every object torch and numba created (0.3-0.4 s of a short job's wall
    time measured on the dev CPU; nothing of vfikit's needs a garbage collection at exit: files and videos are
    closed by the code that opens them). Tests and library callers use :func:`main`, which freezes nothing."""
    import gc

    status = main()
    gc.freeze()
    return status


if __name__ == "__main__":
    raise SystemExit(entry())
