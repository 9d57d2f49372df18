"""``vfikit bench``: latency, frames/s, peak memory, parameters and MACs per model and frame size."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vfikit.errors import VfikitError
from vfikit.runtime import DEFAULT_PRECISION, PRECISION_CHOICES


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models", nargs="+", metavar="NAME", help="registered models (default: all)")
    p.add_argument("--sizes", nargs="+", metavar="WxH", help="frame sizes (default 256x256 1280x720 1920x1080)")
    p.add_argument("--devices", nargs="+", metavar="DEV", help="devices (default: cpu, plus cuda when present)")
    p.add_argument("--quick", action="store_true", help="256x256 only, 1 warm-up and 3 timed runs")
    p.add_argument("--warmup", type=int, help="untimed runs before timing (default 2)")
    p.add_argument("--repeats", type=int, help="timed runs (default 10; fewer once --max-seconds is spent)")
    p.add_argument("--max-seconds", type=float, help="stop adding timed runs after this many seconds (default 60)")
    p.add_argument("--threads", type=int, help="torch / OpenCV threads (default: library default)")
    p.add_argument("--precision", default=DEFAULT_PRECISION, choices=PRECISION_CHOICES,
                   help="autocast precision of the timed calls (default fp32; auto: as `vfikit interpolate` "
                        "runs each model, bf16 for the flow-guided models on CPUs where it is measured faster)")
    p.add_argument("--in-process", action="store_true",
                   help="run every case in this process (faster; CPU peak memory is then cumulative)")
    p.add_argument("--out", type=Path, metavar="DIR", help="write DIR/NAME.json and DIR/NAME.md")
    p.add_argument("--name", default="bench", help="file name stem for --out (default bench)")
    p.add_argument("--force", action="store_true", help="overwrite existing result files")


def run(args: argparse.Namespace) -> int:
    import torch

    from vfikit.bench import DEFAULT_SIZES, BenchCase, BenchSettings, parse_size, run_bench, to_markdown
    from vfikit.models.catalog import get_entry, list_models
    from vfikit.runtime import resolve_device, write_text_atomic

    models = args.models or list_models()
    for m in models:
        get_entry(m)  # unknown names fail before any measuring
    if args.sizes:
        sizes = [parse_size(s) for s in args.sizes]
    else:
        sizes = [DEFAULT_SIZES[0]] if args.quick else list(DEFAULT_SIZES)
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    for d in devices:
        resolve_device(d)
    quick = {"warmup": 1, "repeats": 3, "min_repeats": 3} if args.quick else {}
    settings = BenchSettings(**quick, precision=args.precision)
    overrides = {"warmup": args.warmup, "repeats": args.repeats, "max_seconds": args.max_seconds,
                 "threads": args.threads}
    for key, value in overrides.items():
        if value is not None:
            if (key != "threads" and value < 0) or (key in ("repeats", "threads") and value < 1):
                raise VfikitError(f"--{key.replace('_', '-')} must be positive, got {value}")
            settings = BenchSettings(**{**settings.__dict__, key: value})
    if settings.min_repeats > settings.repeats:
        settings = BenchSettings(**{**settings.__dict__, "min_repeats": settings.repeats})
    paths = []
    if args.out is not None:
        paths = [args.out / f"{args.name}.json", args.out / f"{args.name}.md"]
        existing = [p for p in paths if p.exists()]
        if existing and not args.force:
            raise VfikitError(f"{existing[0]} exists; pass --force to overwrite")
    cases = [BenchCase(m, w, h, d) for d in devices for m in models for (w, h) in sizes]
    bench = run_bench(cases, settings, isolate=not args.in_process,
                      progress=lambda msg: print(msg, file=sys.stderr, flush=True))
    md = to_markdown(bench)
    print(md)
    if paths:
        args.out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(paths[0], json.dumps(bench, indent=2) + "\n")
        write_text_atomic(paths[1], md)
        print("wrote " + ", ".join(map(str, paths)), file=sys.stderr)
    failed = [r for r in bench["results"] if "error" in r]
    return 1 if failed and len(failed) == len(bench["results"]) else 0
