"""Where a guided model's motion error comes from, on the synthetic part of a recipe's validation set (exact
motion known): DIS's flows between the inputs, or the splatting of those flows to t.

    python tools/pair_flow_oracle.py vfikit_guided_pair_flow guided_adacof_k5_fast.vfikit

For each synthetic validation sample it runs the model's guide twice, with DIS's own flows between the inputs and
with the exact ones (``Triplet.motion`` channels 6-11), and prints, averaged over the samples:

* ``pair epe``: the error of DIS's flows 0->1 and 1->0 against the exact ones (pixels seen in the other frame),
  overall, where DIS is within 1 px and where it is more than 5 px off;
* ``epe at t``: the error of the splatted flows t->0 and t->1 against the exact ones (visible pixels);
* ``psnr``: the model's frame (its unfused path, fp32) and ``flow_dis``'s frame, each with DIS's flows and with
  the exact flows splatted by the same guide.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from vfikit.config import load_config
from vfikit.data.factory import sample_fingerprint, validation_samples
from vfikit.hub import create_model
from vfikit.models.guided import guide_blend_weight


def _epe(flow: torch.Tensor, exact: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """End-point errors (N,) of (1, 2, H, W) flows on the pixels where ``mask`` (1, H, W) holds."""
    return torch.linalg.vector_norm(flow - exact, dim=1)[mask]


def _psnr(frame: torch.Tensor, target: torch.Tensor) -> float:
    return float(-10 * torch.log10(((frame.clamp(0, 1) - target) ** 2).mean()))


def _guide_with(model, flows: tuple[torch.Tensor, torch.Tensor]):
    """A replacement for ``model._guide`` that splats the given flows between the inputs."""

    def guide(frame0, frame1, t):
        motion = model.guide.motion_from_flows(frame0, frame1, *flows, t)
        vis = motion["visibility"]
        return motion["flow_t0"], motion["flow_t1"], vis, guide_blend_weight(vis, t), {}

    return guide


def probe(model, sample) -> dict[str, list]:
    """The errors (tensors of per-pixel values) and PSNRs of one sample with DIS's and the exact flows."""
    x0, x1, m = sample.frame0[None], sample.frame1[None], sample.motion[None]
    t = torch.tensor([float(sample.t)])
    dis = model.guide.flows(x0, x1)
    exact = (m[:, 6:8].contiguous(), m[:, 8:10].contiguous())
    out: dict[str, list] = {}
    for j, flow in enumerate((dis["flow01"], dis["flow10"])):
        seen = m[:, 10 + j] > 0.5
        error = _epe(flow, exact[j], seen)
        out.setdefault("pair epe", []).append(error)
        out.setdefault("pair epe where DIS < 1 px", []).append(error[error < 1])
        out.setdefault("pair epe where DIS > 5 px", []).append(error[error > 5])
    own_guide = model._guide
    for name, flows in (("DIS", (dis["flow01"], dis["flow10"])), ("exact", exact)):
        motion = model.guide.motion_from_flows(x0, x1, *flows, t)
        for j, key in enumerate(("flow_t0", "flow_t1")):
            out.setdefault(f"epe at t, {name} flows", []).append(_epe(motion[key], m[:, 2 * j : 2 * j + 2],
                                                                      m[:, 4 + j] > 0.5))
        model._guide = _guide_with(model, flows)
        try:
            out.setdefault(f"psnr, model with {name} flows", []).append(_psnr(model(x0, x1, t=t), sample.target[None]))
        finally:
            model._guide = own_guide
        a, c = (x[0].permute(1, 2, 0).numpy() for x in (x0, x1))
        f01, f10 = (f[0].permute(1, 2, 0).numpy().copy() for f in flows)
        frame = torch.from_numpy(model.guide.synthesize(a.copy(), c.copy(), f01, f10, float(sample.t))[0])
        out.setdefault(f"psnr, flow_dis with {name} flows", []).append(
            _psnr(frame.permute(2, 0, 1)[None], sample.target[None]))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("recipe", help="recipe name or YAML path whose data.val is used (its exact-motion parts)")
    p.add_argument("model", help="a guided model: name, vfikit file or training checkpoint")
    args = p.parse_args(argv)
    samples = validation_samples(load_config(args.recipe), log=print)
    print(f"validation set {sample_fingerprint(samples)} ({len(samples)} samples)")
    samples = [s for s in samples if s.motion is not None and s.motion.shape[0] >= 12]
    if not samples:
        raise SystemExit("no validation sample of this recipe carries exact motion (set exact_motion: true)")
    model = create_model(args.model).eval()
    rows: dict[str, list] = {}
    with torch.no_grad():
        for s in samples:
            for key, values in probe(model, s).items():
                rows.setdefault(key, []).extend(values)
    print(f"{args.model} on {len(samples)} samples with exact motion:")
    for key, values in rows.items():
        if isinstance(values[0], torch.Tensor):
            pixels = torch.cat(values)
            print(f"  {key}: {float(pixels.mean()):.3f} px over {pixels.numel()} pixels")
        else:
            print(f"  {key}: {np.mean(values):.3f} dB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
