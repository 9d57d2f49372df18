"""What a perfect guide would be worth: the guided models fed flows from the true middle frame.

    python tools/teacher_flow_probe.py vfikit_guided_dsepconv guided_adacof_k5.vfikit

For every validation sample of the recipe, OpenCV DIS (the guide's own setting, quarter-size start) from the
true frame at t to each input frame gives the flows F_t0, F_t1 that the guide estimates without it (by
splatting the flows between the inputs). Prints per validation part: the average of the two frames warped by
these teacher flows, the model as it is, and the model with the teacher flows in place of its guide's (visibility
one, blend 1 - t). An upper bound, not a method: the teacher sees the answer. The gap says how much of the
error is the flow at t. ``--self-taught`` also runs the method that needs no answer: the model's own output
stands in for the true frame, the model runs again with the flows DIS finds from it (and the guide's visibility
and blend), and that output is also averaged with the first. Never Middlebury or any benchmark ``vfikit eval``
reads.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from vfikit.config import load_config
from vfikit.data.factory import validation_samples
from vfikit.hub import create_model
from vfikit.losses import teacher_flow
from vfikit.ops import backward_warp


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("recipe", help="recipe whose data.val gives the samples")
    p.add_argument("model", help="a guided model: registry name, vfikit file or training checkpoint")
    p.add_argument("--self-taught", action="store_true", help="also the model re-run on flows from its own output")
    args = p.parse_args(argv)
    cfg = load_config(args.recipe)
    samples = validation_samples(cfg)
    model = create_model(args.model)
    own_guide = model._guide
    results: dict[str, dict[str, list[float]]] = {}

    def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
        return float(-10 * torch.log10(((a.clamp(0, 1) - b) ** 2).mean()))

    for s in samples:
        x0, x1, target = s.frame0[None], s.frame1[None], s.target[None]
        t0, t1 = (teacher_flow(target, x, init_scale=2) for x in (x0, x1))  # (x, y)
        tt = float(s.t)

        def teacher_guide(frame0, frame1, t, t0=t0, t1=t1, tt=tt):
            ones = torch.ones_like(t0)
            return t0, t1, ones, torch.full_like(ones[:, :1], 1 - tt), {}

        with torch.no_grad():
            warped = (1 - tt) * backward_warp(x0, t0) + tt * backward_warp(x1, t1)
            model._guide = own_guide
            own = model(x0, x1)
            model._guide = teacher_guide
            taught = model(x0, x1)
            outputs = {"teacher warp": warped, "model": own, "model with teacher flows": taught}
            if args.self_taught:
                s0, s1 = (teacher_flow(own.clamp(0, 1), x, init_scale=2) for x in (x0, x1))
                _, _, vis, b0, _ = own_guide(x0, x1, torch.tensor([tt]))
                model._guide = lambda frame0, frame1, t, s0=s0, s1=s1, vis=vis, b0=b0: (s0, s1, vis, b0, {})
                outputs["self-taught"] = model(x0, x1)
                outputs["self-taught, averaged with the model"] = 0.5 * (outputs["self-taught"] + own)
        model._guide = own_guide
        for key, out in outputs.items():
            results.setdefault(key, {}).setdefault(s.part, []).append(psnr(out, target))
    for key, parts in results.items():
        print(f"{key}: " + ", ".join(f"{p} {np.mean(v):.3f}" for p, v in sorted(parts.items())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
