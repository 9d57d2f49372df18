"""Forward time of every registered kernel model through the Interpolator (one warm-up, then median of N).

Run from the repository root: ``PYTHONPATH=src python benchmarks/model_forward_cpu.py [--size 256] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from vfikit import Interpolator, create_model
from vfikit.models.catalog import get_entry, list_models


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=256, help="square frame side in px")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--convention", default="official", choices=("official", "clean"))
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.manual_seed(0)
    f0, f1 = torch.rand(1, 3, args.size, args.size), torch.rand(1, 3, args.size, args.size)
    print(f"torch threads: {torch.get_num_threads()}, frame {args.size}x{args.size}, {args.convention}")
    for name in list_models():
        if get_entry(name).family not in ("sepconv", "dsepconv", "edsc", "adacof", "cdfi"):
            continue
        ip = Interpolator(create_model(name, convention=args.convention), device=args.device,
                          allow_untrained=True)  # speed only: random weights are fine
        ip(f0, f1)
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            ip(f0, f1)
            times.append(time.perf_counter() - start)
        print(f"{name:26s} median {statistics.median(times):6.2f} s  (min {min(times):.2f}, max {max(times):.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
