"""Training checkpoints: one dict layout, atomic writes, exact-resume RNG state, retention.

A checkpoint is a trained-weights dict (:data:`vfikit.hub.TRAINED_WEIGHTS_KEYS`, written by
:func:`vfikit.hub.trained_weights`, which ``create_model(path)`` reads back) with the training state
beside it (``torch.save``, loadable with ``weights_only=True``)::

    {"model": state_dict, "arch": str, "model_args": dict,            # the trained weights
     "config_args": dict, "optimizer": ..., "scheduler": ..., "scaler": ..., "step": int, "config": dict,
     "vfikit_version": str,
     "rng": {"ranks": [per-rank {"python", "numpy", "torch", "cuda"}], "sampler": {"seed", "next_sample"}},
     "best_val": float | None, "ema": AveragedModel state dict | None, "val_set": str | None}

Files in the run folder: ``step_000001000.pt`` (the newest ``keep_last`` are kept; the newest is
the resume point) and ``best.pt`` (:data:`BEST_KEYS`: the weights with the best validation PSNR, with
``config_args``, ``step``, ``metrics``, ``config``, ``vfikit_version``). ``model_args`` rebuild the model
(its own record, :func:`vfikit.engine.train.build_args`: a model started from ``model.init`` weights may
have other widths than the config says); ``config_args`` are the config's ``model.args``, which a resume
must match; ``best_val`` is the best selection PSNR so far; ``ema`` the weight average
(``train.ema_decay``), whose weights ``create_model`` loads when present; ``val_set`` the fingerprint of the
validation samples ``best_val`` was measured on (``vfikit.data.factory.sample_fingerprint``): a resume on
another set is refused, since the recipes' optional clips change it.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vfikit.errors import VfikitError
from vfikit.hub import TRAINED_WEIGHTS_KEYS
from vfikit.runtime import atomic_path, torch_load

CHECKPOINT_KEYS = (*TRAINED_WEIGHTS_KEYS, "config_args", "optimizer", "scheduler", "scaler", "step", "config",
                   "vfikit_version", "rng", "best_val", "ema", "val_set")
LATER_KEYS = ("config_args", "best_val", "ema", "val_set")  # checkpoints of older versions may lack these
BEST_KEYS = (*TRAINED_WEIGHTS_KEYS, "config_args", "step", "metrics", "config", "vfikit_version")
_STEP_FILE = re.compile(r"^step_(\d+)\.pt$")


def step_filename(step: int) -> str:
    return f"step_{step:09d}.pt"


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    missing = [k for k in CHECKPOINT_KEYS if k not in state]
    if missing:
        raise ValueError(f"checkpoint state lacks {missing}")  # a programming error, not user input
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a training checkpoint (``weights_only=True``); VfikitError if it is not one."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise VfikitError(f"checkpoint not found: {path}")
    state = torch_load(path, "a training checkpoint", map_location)
    if not isinstance(state, dict) or any(k not in state for k in CHECKPOINT_KEYS if k not in LATER_KEYS):
        keys = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise VfikitError(f"{path} is not a vfikit training checkpoint (keys: {keys})")
    return state


def list_checkpoints(folder: str | Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of the ``step_*.pt`` files in ``folder``, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        m = _STEP_FILE.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest_checkpoint(folder: str | Path) -> Path | None:
    found = list_checkpoints(folder)
    return found[-1][1] if found else None


def prune_checkpoints(folder: str | Path, keep_last: int) -> list[Path]:
    """Delete all but the newest ``keep_last`` step checkpoints (0 keeps all). Returns the deleted."""
    found = list_checkpoints(folder)
    if keep_last <= 0 or len(found) <= keep_last:
        return []
    doomed = [p for _, p in found[:-keep_last]]
    for p in doomed:
        p.unlink()
    return doomed


def rng_state() -> dict[str, Any]:
    """This process's RNG states in a ``weights_only``-loadable form."""
    kind, key, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "key": torch.from_numpy(key.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what ``rng_state`` returned."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
