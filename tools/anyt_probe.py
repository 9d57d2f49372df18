"""Frames at t = 1/4 and 3/4 on held-out real clips: a model's own t against recursive bisection.

    python tools/anyt_probe.py runs/vfikit_guided_dsepconv/best.pt guided_adacof_k5.vfikit flow_dis

Samples: frames i and i+4 of the last 10% of every clip of ``../shared/data/clips`` (scene cuts and
repeated frames excluded), truths i+1 (t = 1/4) and i+3 (t = 3/4), every ``--step``-th window. Each model
is scored natively when it takes any t, and by bisection (the midpoint, then the midpoint of the half
holding t: two calls, as ``Interpolator`` does for midpoint-only models). PSNR on the full frame
(longer side at most ``--max-side``), clamped float output, peak 1.
"""

from __future__ import annotations

import argparse

import torch

from vfikit.data.sequences import FrameSequenceDataset
from vfikit.hub import create_model


def _psnr(pred: torch.Tensor, target: torch.Tensor) -> float:
    return float(-10 * torch.log10((pred.clamp(0, 1) - target).pow(2).mean().clamp_min(1e-10)))


def _bisect(model, f0: torch.Tensor, f1: torch.Tensor, t: float) -> torch.Tensor:
    mid = model(f0, f1).clamp(0, 1)
    return model(f0, mid).clamp(0, 1) if t < 0.5 else model(mid, f1).clamp(0, 1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", help="registry names (name.vfikit for shipped weights) or checkpoints")
    p.add_argument("--clips", default="../shared/data/clips")
    p.add_argument("--max-side", type=int, default=480)
    p.add_argument("--step", type=int, default=3, help="use every step-th window")
    args = p.parse_args(argv)
    data = FrameSequenceDataset([args.clips], window=4, targets="all", max_side=args.max_side,
                                segment=[0.9, 1.0], step=args.step)
    items = [data[i] for i in range(len(data)) if abs(data[i].t - 0.5) > 0.1]
    print(f"{len(items)} samples (t = 1/4 and 3/4) from {len(data.clips)} clips")
    for name in args.models:
        model = create_model(name)
        native, bisect = [], []
        with torch.inference_mode():
            for s in items:
                f0, f1, truth = s.frame0[None], s.frame1[None], s.target[None]
                if getattr(model, "arbitrary_t", False):
                    native.append(_psnr(model(f0, f1, t=s.t), truth))
                bisect.append(_psnr(_bisect(model, f0, f1, s.t), truth))
        shown = f"native {sum(native) / len(native):.3f} dB, " if native else ""
        print(f"{name}: {shown}bisection {sum(bisect) / len(bisect):.3f} dB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
