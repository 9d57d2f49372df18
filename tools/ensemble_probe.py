"""How much averaging several runs of one model gains: other guide starts and mirrored frames (test-time ensembles).

    python tools/ensemble_probe.py vfikit_guided_dsepconv guided_adacof_k5.vfikit
    python tools/ensemble_probe.py vfikit_guided_dsepconv runs/vfikit_guided_adacof_k5_fast_c4/best.pt --subsets

Members: ``q`` the model as it ships (quarter-size DIS start), ``h`` a half-size start (``init_scale=1``),
``q3`` an eighth-size start, ``q_flip`` / ``q_vflip`` / ``h_vflip`` the same on horizontally / vertically mirrored
frames (mirrored back). Prints each member's and the all-member mean's PSNR per validation part of the recipe's
samples (the set ``vfikit train`` selects weights with); ``--subsets`` also ranks every subset by the real part
(chosen on the validation set itself, so an optimistic ceiling). Never Middlebury or any benchmark ``vfikit eval``
reads.
"""

from __future__ import annotations

import argparse
import itertools
from dataclasses import replace

import torch
from torch import nn

from vfikit.config import load_config
from vfikit.data.factory import validation_samples
from vfikit.engine.train import validate
from vfikit.hub import create_model
from vfikit.models.classical import FlowDIS


class Mirrored(nn.Module):
    """``model`` run on frames mirrored along ``dims``, its output mirrored back."""

    def __init__(self, model: nn.Module, dims: list[int]) -> None:
        super().__init__()
        self.model, self.dims = model, dims

    def forward(self, frame0: torch.Tensor, frame1: torch.Tensor, t=None) -> torch.Tensor:
        return self.model(frame0.flip(self.dims), frame1.flip(self.dims), t=t).flip(self.dims)


def build(source: str, **flow) -> nn.Module:
    """The model of ``source`` (registry name, vfikit file or training checkpoint) with guide settings ``flow``."""
    model = create_model(source)
    if flow:  # the recorded guide settings with these replaced
        model.guide = FlowDIS(replace(model.guide.config, **flow))
    return model


def scores(pred: torch.Tensor, target: torch.Tensor, parts: list[str]) -> dict[str, float]:
    """Mean PSNR per part of (N, 3, H, W) predictions in [0, 1]."""
    psnr = -10 * torch.log10(((pred - target) ** 2).flatten(1).mean(1))
    return {p: round(float(psnr[torch.tensor([q == p for q in parts])].mean()), 3) for p in sorted(set(parts))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("recipe", help="recipe whose data.val gives the samples")
    p.add_argument("model", help="registry name, vfikit file or training checkpoint (a guided model)")
    p.add_argument("--subsets", action="store_true", help="also rank every subset of members (optimistic)")
    args = p.parse_args(argv)
    cfg = load_config(args.recipe)
    samples = validation_samples(cfg)
    parts, target = [s.part for s in samples], torch.stack([s.target for s in samples])
    q, h = build(args.model), build(args.model, init_scale=1)
    members = {"q": q, "h": h, "q3": build(args.model, init_scale=3), "q_flip": Mirrored(q, [-1]),
               "q_vflip": Mirrored(q, [-2]), "h_vflip": Mirrored(h, [-2])}
    preds = {}
    for name, model in members.items():
        _, out = validate(model, samples, torch.device("cpu"), cfg.data.val_batch_size, pass_t=False)
        preds[name] = torch.stack(out)
        print(f"{name}: {scores(preds[name], target, parts)}", flush=True)
    print(f"mean of all {len(preds)}: {scores(torch.stack(list(preds.values())).mean(0), target, parts)}")
    if args.subsets:
        ranked = sorted(((scores(torch.stack([preds[k] for k in c]).mean(0), target, parts), c)
                         for r in range(2, len(preds)) for c in itertools.combinations(preds, r)),
                        key=lambda x: -x[0].get("real", 0.0))
        for s, c in ranked[:5]:
            print(f"subset {'+'.join(c)}: {s}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
