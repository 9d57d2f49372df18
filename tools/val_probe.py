"""Score models on a recipe's validation samples (the set `vfikit train` selects weights with).

    python tools/val_probe.py vfikit_guided_adacof_k5 flow_dis overlay guided_adacof_k5 \
        runs/vfikit_guided_adacof_k5/best.pt

Each model argument is a registry name (untrained for trainable archs; ``name.vfikit`` for shipped weights) or
a training checkpoint (``best.pt`` / ``step_*.pt``; its weight average when it has one, unless ``--raw``).
Prints the mean PSNR per model, over all samples and per validation part (synthetic, real, ...).
Models without ``arbitrary_t`` are scored only when every sample has t = 0.5.
"""

from __future__ import annotations

import argparse
import functools

import torch

from vfikit.config import load_config
from vfikit.data.factory import validation_samples
from vfikit.engine.train import validate
from vfikit.hub import create_model


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("recipe", help="recipe name or YAML path whose data.val is used")
    p.add_argument("models", nargs="+", help="registry names or training checkpoints")
    p.add_argument("--raw", action="store_true", help="checkpoints: the raw weights, not the weight average")
    p.add_argument("--seed", type=int, default=None, help="the run's train.seed (default: the recipe's)")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16"),
                   help="bf16: the model runs under CPU bfloat16 autocast (as `vfikit interpolate --bf16`)")
    args = p.parse_args(argv)
    cfg = load_config(args.recipe)
    samples = validation_samples(cfg, seed=args.seed, log=print)
    for name in args.models:
        model = create_model(name)
        if args.raw:  # a training checkpoint's raw weights instead of its average
            model.load_state_dict(torch.load(name, map_location="cpu", weights_only=True)["model"])
        torch.manual_seed(0)
        pass_t = bool(getattr(model, "arbitrary_t", False))
        autocast = functools.partial(torch.autocast, "cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16")
        metrics, _ = validate(model, samples, torch.device("cpu"), cfg.data.val_batch_size, pass_t=pass_t,
                              autocast=autocast)
        parts = ", ".join(f"{k.split('/', 1)[1]} {v:.3f}" for k, v in metrics.items() if "/" in k)
        print(f"{name}: PSNR {metrics['val_psnr']:.3f} dB over {len(samples)} samples"
              + (f" ({parts})" if parts else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
