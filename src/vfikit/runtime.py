"""Small runtime services shared by every layer: devices, safe ``torch.load``, atomic writes, checksums,
parameter counts, the package's weights folder.

Nothing here knows about models, the registry or video; everything may import it. torch is imported
where it is used, so that the command line's help does not load it.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vfikit.errors import VfikitError

if TYPE_CHECKING:
    import torch
    from torch import nn


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"`` or None -> CUDA when available (``cuda:LOCAL_RANK`` under torchrun), else CPU.

    A named device must exist and be usable here; VfikitError otherwise.
    """
    import torch

    if device is None or device == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        rank = os.environ.get("LOCAL_RANK")
        return torch.device(f"cuda:{int(rank)}" if rank is not None else "cuda")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise VfikitError(f"unknown device {device!r}: use cpu, cuda, cuda:N, mps or auto") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise VfikitError(f"device {str(device)!r} was asked for but CUDA is not available here")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise VfikitError(f"device {str(device)!r} was asked for but MPS is not available here")
    return dev


@contextmanager
def atomic_path(path: str | os.PathLike, *, durable: bool = False) -> Iterator[Path]:
    """A temporary name beside ``path`` to write to; it replaces ``path`` in one step when the block ends.

    Readers never see a half-written file, and a failed write leaves ``path`` as it was (the temporary
    file is removed). The name keeps ``path``'s suffix, for writers that choose the format by it.
    ``durable``: flush the file to disk before the rename (for files that resuming relies on).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        yield tmp
        if durable:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | os.PathLike, text: str, *, durable: bool = False) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through :func:`atomic_path`."""
    with atomic_path(path, durable=durable) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    return Path(path)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def count_parameters(model: nn.Module) -> int:
    """Number of parameter values (shared tensors counted once)."""
    seen, total = set(), 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total


def packaged_weights(filename: str) -> Path | None:
    """Path of a weights file shipped in ``vfikit/weights/``, or None when this installation lacks it."""
    path = Path(str(resources.files("vfikit") / "weights" / filename))
    return path if path.is_file() else None


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
    import torch

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
