"""Latency and peak memory of one model at one size, in this fresh process (CPU).

    python benchmarks/model_latency_memory.py guided_adacof_k5.vfikit 640x480
    python benchmarks/model_latency_memory.py runs/compress_guided_adacof_k5_l1/finetune/best.pt 1280x720

The model (a name as ``create_model`` takes it, or a training checkpoint, e.g. a compact model whose
widths ``vfikit bench`` cannot name) interpolates the DAVIS car-turn pair resized to the size through
the ``Interpolator``: one warm-up, then the median of ``--repeats`` calls. Peak: the process's resident-set
high-water mark (``ru_maxrss``) and how much it rose during the calls. Prints one markdown table row.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed_stages import load, real_pair
from vfikit import Interpolator


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("size", help="WxH")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    a, b = real_pair(width, height)
    f0, f1 = (torch.from_numpy(x).permute(2, 0, 1) for x in (a, b))
    model = load(args.model).eval()
    ip = Interpolator(model, device="cpu")
    with torch.inference_mode():
        ip(f0, f1)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            ip(f0, f1)
            times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    params = sum(p.numel() for p in model.parameters())
    print(f"| {args.model} | {args.size} | {params:,} | {statistics.median(times):.3f} | {peak:.0f} "
          f"(+{peak - before:.0f}) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
