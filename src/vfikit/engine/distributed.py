"""Process-group setup from torchrun's environment variables (no ``--local_rank`` flags).

``torchrun --nproc_per_node=N -m vfikit train cfg.yaml`` sets RANK, WORLD_SIZE, LOCAL_RANK,
LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT; without them the run is a single process.
Backend: nccl for CUDA, gloo for CPU.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from vfikit.errors import VfikitError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def is_primary(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise VfikitError(f"environment variable {name}={value!r} is not an integer") from None


def info_from_env() -> DistInfo:
    """Rank and world size as torchrun sets them (a single process otherwise)."""
    world = _env_int("WORLD_SIZE", 1)
    local_world = _env_int("LOCAL_WORLD_SIZE", world)
    return DistInfo(_env_int("RANK", 0), world, _env_int("LOCAL_RANK", 0), local_world)


def setup(device_type: str) -> DistInfo:
    """Initialise the default process group when WORLD_SIZE > 1 (idempotent)."""
    info = info_from_env()
    if info.enabled and not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size)
    return info


def teardown() -> None:
    """Destroy the process group. With gloo, first wait (at most 60 s) for every rank to arrive:
    destroying it while another rank still talks to it aborted that rank ("terminate called
    without an active exception") in one fresh-clone CI run."""
    if dist.is_initialized():
        if dist.get_backend() == "gloo":
            with contextlib.suppress(RuntimeError):  # a rank failed or left: nothing to wait for
                dist.monitored_barrier(timeout=timedelta(seconds=60))
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def any_flag(flag: bool, device: torch.device) -> bool:
    """True on every rank if ``flag`` is True on any rank (a no-op for a single process)."""
    if not dist.is_initialized():
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj`` in rank order (``[obj]`` for a single process)."""
    if not dist.is_initialized():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out
