"""``vfikit eval``: score a model on a benchmark with the documented protocol (docs/evaluation.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vfikit.data.benchmarks import BENCHMARKS
from vfikit.errors import VfikitError
from vfikit.metrics import METRICS
from vfikit.runtime import DEFAULT_PRECISION, PRECISION_CHOICES


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="registered model name, e.g. overlay, flow_dis, cdfi.official")
    p.add_argument("--weights", help="weights file (official checkpoint or vfikit file) overriding the name's tag")
    p.add_argument("--allow-untrained", action="store_true",
                   help="score a learned model without trained weights (its frames are garbage; for research)")
    p.add_argument("--dataset", required=True, choices=sorted(BENCHMARKS), help="benchmark layout under --root")
    p.add_argument("--root", required=True, type=Path, help="dataset folder")
    p.add_argument("--split", help="vimeo90k: test|train; snufilm: easy|medium|hard|extreme")
    p.add_argument("--metrics", nargs="+", default=["psnr", "ssim", "ie"], choices=METRICS, metavar="METRIC",
                   help=f"metrics to compute (default psnr ssim ie; choices {', '.join(METRICS)})")
    p.add_argument("--lpips-weights", nargs="+", type=Path, metavar="FILE",
                   help="SqueezeNet-1.1 backbone + LPIPS v0.1 linear weights (one or two files); "
                   "adds lpips, lpips_cdfi")
    p.add_argument("--out", type=Path, help="folder for per_sample.csv and summary.json")
    p.add_argument("--save-outputs", type=Path, metavar="DIR", help="keep every prediction as DIR/<key>.png")
    p.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda, cuda:1, ...")
    p.add_argument("--precision", default=DEFAULT_PRECISION, choices=PRECISION_CHOICES,
                   help="fp32 (default: the protocol's numbers), or as `vfikit interpolate` may run: bf16, fp16 "
                        "(GPU), auto")
    p.add_argument("--limit", type=int, help="evaluate only the first N samples")
    p.add_argument("--force", action="store_true", help="overwrite existing report files / saved outputs")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from vfikit.data.benchmarks import open_benchmark
    from vfikit.engine.evaluate import evaluate, write_report
    from vfikit.hub import create_model
    from vfikit.metrics import LPIPS
    from vfikit.models.base import require_trained
    from vfikit.runtime import sha256_file

    if args.limit is not None and args.limit < 1:
        raise VfikitError(f"--limit must be at least 1, got {args.limit}")
    metrics = list(dict.fromkeys(args.metrics))
    lpips = None
    if args.lpips_weights:
        lpips = LPIPS.from_files(args.lpips_weights)
        metrics += [m for m in ("lpips", "lpips_cdfi") if m not in metrics]
    elif any(m.startswith("lpips") for m in metrics):
        raise VfikitError("metric lpips needs --lpips-weights FILE [FILE] (SqueezeNet-1.1 + LPIPS v0.1 linear)")
    if args.out is not None and not args.force:
        for name in ("per_sample.csv", "summary.json"):
            if (args.out / name).exists():
                raise VfikitError(f"{args.out / name} exists; pass --force to overwrite")
    if args.save_outputs is not None and not args.force and args.save_outputs.is_dir() \
            and any(args.save_outputs.iterdir()):
        raise VfikitError(f"--save-outputs folder {args.save_outputs} is not empty; pass --force to overwrite")
    model = create_model(args.model, weights=args.weights)  # the one check of --weights (file or tag)
    weights_sha = sha256_file(args.weights) if args.weights is not None and Path(args.weights).is_file() else None
    dataset = open_benchmark(args.dataset, args.root, args.split)
    require_trained(model, allow_untrained=args.allow_untrained)
    info = {"model": args.model, "weights": str(args.weights) if args.weights else None,
            "weights_sha256": weights_sha}
    report = evaluate(model, dataset, metrics=metrics, device=args.device, limit=args.limit, precision=args.precision,
                      save_outputs=args.save_outputs, lpips=lpips, progress=not args.quiet, info=info)
    print(f"{args.model} on {dataset.name}" + (f" ({dataset.split})" if dataset.split else "")
          + f": {len(report.rows)} samples, device {report.summary['device']['device']}")
    print(report.table())
    if args.out is not None:
        paths = write_report(report, args.out, force=args.force)
        print("wrote " + ", ".join(str(p) for p in paths), file=sys.stderr)
    return 0
