"""Choose flow_dis settings on real video triplets that are NOT a reported benchmark.

Data: ../shared/data/clips/cdfi_img_seq (52 consecutive 854x480 frames); triplet i uses frames
i and i+2 as inputs and i+1 as ground truth (t = 0.5). Middlebury is never looked at here.

    PYTHONPATH=src python benchmarks/tune_flow_dis.py [--step 2] [--out benchmarks/results/flow_dis_tuning.md]

Prints and writes a markdown table of mean PSNR / SSIM (CDFI protocol, vfikit.metrics) per setting.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from vfikit.imageio import load_rgb
from vfikit.metrics import psnr, ssim
from vfikit.models.classical import FlowDIS, Overlay

CLIP = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "clips" / "cdfi_img_seq"

# (label, settings) evaluated in this order; the first block varies one thing at a time.
GRID = [
    ("overlay", None),
    ("default", {}),
    ("preset=fast", {"preset": "fast"}),
    ("preset=ultrafast", {"preset": "ultrafast"}),
    ("variational_iterations=10", {"variational_iterations": 10}),
    ("flow_at_t=linear", {"flow_at_t": "linear"}),
    ("occlusion=False", {"occlusion": False}),
    ("splat_beta=5", {"splat_beta": 5.0}),
    ("splat_beta=50", {"splat_beta": 50.0}),
    ("fb_alpha=0.05,fb_beta=1", {"fb_alpha": 0.05, "fb_beta": 1.0}),
    ("occlusion_blur=0", {"occlusion_blur": 0.0}),
    ("occlusion_blur=3", {"occlusion_blur": 3.0}),
    ("finest_scale=0", {"finest_scale": 0}),
    ("fb_alpha=0.05,fb_beta=2", {"fb_alpha": 0.05, "fb_beta": 2.0}),
    ("fb_alpha=0.05,fb_beta=2,occlusion_blur=3", {"fb_alpha": 0.05, "fb_beta": 2.0, "occlusion_blur": 3.0}),
    ("fb_alpha=0.1,fb_beta=4,occlusion_blur=3", {"fb_alpha": 0.1, "fb_beta": 4.0, "occlusion_blur": 3.0}),
    ("occlusion_strength=0.5", {"occlusion_strength": 0.5}),
    ("occlusion_strength=0.8", {"occlusion_strength": 0.8}),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--step", type=int, default=2, help="use every STEP-th triplet (default 2: 25 triplets)")
    ap.add_argument("--gap", type=int, default=1, help="inputs i and i+2*GAP, target i+GAP (default 1)")
    ap.add_argument("--only", nargs="*", help="labels of the grid to run (default: all)")
    ap.add_argument("--out", type=Path, help="write the markdown table here")
    args = ap.parse_args()
    frames = sorted(CLIP.glob("*.jpg"))
    if len(frames) < 3:
        raise SystemExit(f"clip not found: {CLIP}")
    g = args.gap
    idx = range(0, len(frames) - 2 * g, args.step)
    data = [(load_rgb(frames[i]), load_rgb(frames[i + 2 * g]), load_rgb(frames[i + g])) for i in idx]
    lines = [f"flow_dis settings on {CLIP.name}: {len(data)} triplets "
             f"(frames i, i+{2 * g} -> i+{g}, i = 0, {args.step}, ...)",
             "", "| setting | PSNR | SSIM | s/frame |", "| --- | --- | --- | --- |"]
    print("\n".join(lines), flush=True)
    for label, settings in GRID:
        if args.only and label not in args.only:
            continue
        model = Overlay() if settings is None else FlowDIS(**settings)
        ps, ss, t0 = [], [], time.perf_counter()
        with torch.inference_mode():
            for f0, f1, gt in data:
                out = model(f0[None], f1[None])[0]
                ps.append(psnr(out, gt))
                ss.append(ssim(out, gt))
        dt = (time.perf_counter() - t0) / len(data)
        line = f"| {label} | {sum(ps) / len(ps):.3f} | {sum(ss) / len(ss):.4f} | {dt:.2f} |"
        lines.append(line)
        print(line, flush=True)
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
