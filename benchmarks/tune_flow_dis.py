"""Choose flow_dis settings on real video triplets that are NOT a reported benchmark.

Data: ../shared/data/clips/cdfi_img_seq (52 consecutive 854x480 frames); triplet i uses frames
i and i+2 as inputs and i+1 as ground truth (t = 0.5). Middlebury is never looked at here.

    PYTHONPATH=src python benchmarks/tune_flow_dis.py --step 4 --gap 1 3 --out benchmarks/results/flow_dis_tuning.md

Prints and writes a markdown table of mean PSNR / SSIM (CDFI protocol, vfikit.metrics) per setting.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from vfikit.image_files import load_rgb
from vfikit.metrics import psnr, ssim
from vfikit.models.classical import FlowDIS, Overlay

CLIP = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "clips" / "cdfi_img_seq"

# (label, settings) evaluated in this order; the first block varies one thing at a time.
GRID = [
    ("overlay", None),
    ("default", {}),
    ("preset=fast", {"preset": "fast"}),
    ("preset=ultrafast", {"preset": "ultrafast"}),
    ("finest_scale=None (preset: 1)", {"finest_scale": None}),
    ("variational_iterations=10", {"variational_iterations": 10}),
    ("flow_at_t=linear", {"flow_at_t": "linear"}),
    ("occlusion=False", {"occlusion": False}),
    ("occlusion_strength=1", {"occlusion_strength": 1.0}),
    ("occlusion_strength=1,fb_alpha=0.1,fb_beta=4,occlusion_blur=3",
     {"occlusion_strength": 1.0, "fb_alpha": 0.1, "fb_beta": 4.0, "occlusion_blur": 3.0}),
    ("splat_beta=5", {"splat_beta": 5.0}),
    ("splat_beta=50", {"splat_beta": 50.0}),
    ("occlusion_blur=3", {"occlusion_blur": 3.0}),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--step", type=int, default=2, help="use every STEP-th triplet (default 2: 25 triplets)")
    ap.add_argument("--gap", type=int, nargs="+", default=[1, 3],
                    help="inputs i and i+2*GAP, target i+GAP; one table per value (default 1 3)")
    ap.add_argument("--only", nargs="*", help="labels of the grid to run (default: all)")
    ap.add_argument("--out", type=Path, help="write the markdown table here")
    args = ap.parse_args()
    frames = sorted(CLIP.glob("*.jpg"))
    if len(frames) < 3:
        raise SystemExit(f"clip not found: {CLIP}")
    lines = []
    for g in args.gap:
        idx = range(0, len(frames) - 2 * g, args.step)
        data = [(load_rgb(frames[i]), load_rgb(frames[i + 2 * g]), load_rgb(frames[i + g])) for i in idx]
        head = [f"\n{CLIP.name}: {len(data)} triplets (frames i, i+{2 * g} -> i+{g}, i = 0, {args.step}, ...)", "",
                "| setting | PSNR | SSIM | s/frame |", "| --- | --- | --- | --- |"]
        print("\n".join(head), flush=True)
        lines += head
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
        text = ("# flow_dis settings chosen on a clip that is not a reported benchmark\n\n"
                "Written by `benchmarks/tune_flow_dis.py` (mean over triplets, CDFI protocol metrics; "
                "s/frame includes the metric computation and depends on machine load).\n")
        args.out.write_text(text + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
