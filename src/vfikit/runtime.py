"""Small runtime services shared by every layer: safe ``torch.load``.

Nothing here knows about models, the registry or video; everything else may import it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

from vfikit.errors import VfikitError


def is_torch_save(path: str | os.PathLike) -> bool:
    """True when ``path`` starts as a ``torch.save`` file does (a zip archive, or a pickle before torch 1.6)."""
    with open(path, "rb") as f:
        head = f.read(4)
    return head == b"PK\x03\x04" or head[:1] == b"\x80"


def torch_load(path: str | os.PathLike, what: str = "PyTorch weights", map_location: Any = "cpu") -> Any:
    """``torch.load(weights_only=True)`` with one-line errors (torch's own are long and cryptic).

    ``what`` names the file in messages (``"PyTorch weights"``, ``"LPIPS weights"``...). A file that
    holds Python objects besides tensors is refused: unpickling them could run code.
    """
    path = Path(path)
    if not path.is_file():
        raise VfikitError(f"{what} file not found: {path}")
    if not is_torch_save(path):
        raise VfikitError(f"cannot read {path} as {what}: it is not a torch.save file")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # pickle/zip errors have many types; all mean "cannot read this safely"
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
        unsafe = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
        if unsafe:
            raise VfikitError(f"{path} holds Python objects ({unsafe.group(1)}) besides tensors, which vfikit does "
                              "not load (unpickling them could run code): save only the state dict") from None
        first = next((line.strip() for line in text.splitlines() if line.strip()), type(exc).__name__)
        first = first if len(first) <= 160 else first[:157] + "..."
        raise VfikitError(f"cannot read {path} as {what} (damaged or not a checkpoint): {first}") from None
