"""``vfikit export``: write a model's network in a deployable format (ONNX)."""

from __future__ import annotations

import argparse
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a guided model with weights, e.g. guided_adacof_k5.vfikit or a .vfikit file")
    parser.add_argument("out", help="the .onnx file to write")
    parser.add_argument("--format", default="onnx", choices=("onnx",), help="output format (onnx)")
    parser.add_argument("--weights", help="weights file for MODEL (a vfikit file or a checkpoint), e.g. after training")
    parser.add_argument("--force", action="store_true", help="overwrite OUT")
    parser.add_argument("--allow-untrained", action="store_true", help="export a network without trained weights")
    parser.epilog = ("The file holds the U-Net and heads (input: the frames and the guide's fields stacked as "
                     "described in docs/benchmarks.md; output: the heads). The guide and the kernel sampling "
                     "stay outside the graph.")


def run(args: argparse.Namespace) -> int:
    from vfikit.errors import VfikitError
    from vfikit.hub import create_model
    from vfikit.models.base import require_trained
    from vfikit.models.onnx_network import export_onnx
    from vfikit.runtime import atomic_path
    from vfikit.video.options import require_onnx

    require_onnx("ONNX export", ("onnx",))
    out = Path(args.out)
    if out.is_dir():
        raise VfikitError(f"{out} is a folder; give the file to write, e.g. {out / 'network.onnx'}")
    if out.exists() and not args.force:
        raise VfikitError(f"{out} exists; pass --force to overwrite it")
    if out.parent.exists() and not out.parent.is_dir():
        raise VfikitError(f"cannot write {out}: {out.parent} is not a folder")
    if not out.parent.is_dir():
        raise VfikitError(f"folder {out.parent} does not exist")
    if args.weights is not None and not Path(args.weights).is_file():
        raise VfikitError(f"weights file not found: {args.weights}")
    model = create_model(args.model, weights=args.weights).eval()
    require_trained(model, allow_untrained=args.allow_untrained)
    try:
        with atomic_path(out) as tmp:
            export_onnx(model, tmp)
    except ImportError as exc:
        raise VfikitError(f'ONNX export needs the onnx package: pip install "vfikit[onnx]" ({exc})') from None
    print(f"wrote {out}: the network of {args.model} (ONNX, opset 17)")
    return 0
