"""The motion at t, per validation part: the flow error of a guided model's guide and of its motion refiner, and
the model's PSNR.

    python tools/motion_probe.py vfikit_guided_dsepconv runs/vfikit_guided_motion/best.pt guided_adacof_k5_fast.vfikit

For each model (a name, vfikit file or training checkpoint of a guided model), per validation part:

* ``epe``: the mean end-point error (pixels) of the flows t->0 and t->1. On the synthetic part against the exact
  flows (``Triplet.motion``, pixels visible in that frame); on the real parts against the DIS teacher from the
  true frame to each input, on the pixels where the teacher's warp reproduces the true frame within
  ``--confident`` (mean absolute colour difference in [0, 1]): the confident teacher.
* ``guide epe``: the same for the model's DIS guide alone (its refiner bypassed), so the two compare directly.
* ``psnr``: the model's frame (its unfused path, fp32).
* with a flow refiner (``PairFlowRefiner``), on the synthetic part: ``pair epe`` and ``DIS pair epe``, the error of
  the refined and of DIS's flows between the inputs against the exact ones (pixels seen in the other frame).
  ``--select k`` sets the refiner's selection window (``PairFlowRefiner.choose``) for the measurement.

It also prints the validation set's fingerprint (``vfikit.data.factory.sample_fingerprint``): compare numbers only
between runs whose fingerprints agree (the recipes' optional clips change the set).
"""

from __future__ import annotations

import argparse
from contextlib import contextmanager

import numpy as np
import torch

from vfikit.config import load_config
from vfikit.data.factory import sample_fingerprint, validation_samples
from vfikit.hub import create_model
from vfikit.losses import teacher_flow, warp_error


@contextmanager
def guide_only(model: torch.nn.Module):
    """The model with its refiners (at t and between the inputs) bypassed: the guide's flows."""
    saved = {name: getattr(model, name, None) for name in ("motion", "flow_refiner")}
    for name in saved:
        setattr(model, name, None)
    try:
        yield model
    finally:
        for name, module in saved.items():
            setattr(model, name, module)


def reference(sample, confident: float) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Reference flows t->0, t->1 (1, 2, H, W) and the masks (1, 1, H, W) where they count."""
    if sample.motion is not None:
        m = sample.motion[None]
        return [m[:, 0:2], m[:, 2:4]], [m[:, 4:5], m[:, 5:6]]
    target = sample.target[None]
    flows, masks = [], []
    for frame in (sample.frame0[None], sample.frame1[None]):
        flow = teacher_flow(target, frame, init_scale=2)
        flows.append(flow)
        masks.append((warp_error(frame, target, flow) < confident).float())
    return flows, masks


def epe(flows: list[torch.Tensor], refs: list[torch.Tensor], masks: list[torch.Tensor]) -> float:
    """Mean end-point error over the masked pixels of both directions."""
    num = sum(float((torch.linalg.vector_norm(f - r, dim=1, keepdim=True) * m).sum())
              for f, r, m in zip(flows, refs, masks))
    den = sum(float(m.sum()) for m in masks)
    return num / max(den, 1.0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("recipe", help="recipe name or YAML path whose data.val is used")
    p.add_argument("models", nargs="+", help="guided models: names, vfikit files or training checkpoints")
    p.add_argument("--confident", type=float, default=0.02, help="teacher pixels count where its warp is this close")
    p.add_argument("--select", type=int, default=None,
                   help="set the flow refiner's select window (0: off) instead of the model's own")
    args = p.parse_args(argv)
    samples = validation_samples(load_config(args.recipe), log=print)
    print(f"validation set {sample_fingerprint(samples)} ({len(samples)} samples)")
    refs = [reference(s, args.confident) for s in samples]
    for name in args.models:
        model = create_model(name).eval()
        if args.select is not None and getattr(model, "flow_refiner", None) is not None:
            model.flow_refiner.select = args.select
            name = f"{name} (select {args.select})"
        rows: dict[str, dict[str, list[float]]] = {}
        for s, (ref, mask) in zip(samples, refs):
            x0, x1, t = s.frame0[None], s.frame1[None], torch.tensor([float(s.t)])
            with torch.no_grad():
                pred, aux = model(x0, x1, t=t if model.arbitrary_t else None, return_aux=True)
                with guide_only(model):
                    _, guide = model(x0, x1, t=t if model.arbitrary_t else None, return_aux=True)
            row = rows.setdefault(s.part, {"epe": [], "guide epe": [], "psnr": []})
            row["epe"].append(epe([aux["flow_t0"], aux["flow_t1"]], ref, mask))
            row["guide epe"].append(epe([guide["flow_t0"], guide["flow_t1"]], ref, mask))
            if "flow01" in aux and s.motion is not None:  # the refined flows between the inputs, and DIS's
                m = s.motion[None]
                pair_ref, pair_mask = [m[:, 6:8], m[:, 8:10]], [m[:, 10:11], m[:, 11:12]]
                dis = model.guide.flows(x0, x1)
                row.setdefault("pair epe", []).append(epe([aux["flow01"], aux["flow10"]], pair_ref, pair_mask))
                row.setdefault("DIS pair epe", []).append(epe([dis["flow01"], dis["flow10"]], pair_ref, pair_mask))
            row["psnr"].append(float(-10 * torch.log10(((pred.clamp(0, 1) - s.target[None]) ** 2).mean())))
        print(f"{name}:")
        for part, row in sorted(rows.items()):
            print(f"  {part}: " + ", ".join(f"{k} {np.mean(v):.3f}" for k, v in row.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
