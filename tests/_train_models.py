"""Tiny registered models for the training tests (a few thousand parameters, 32x32 inputs).

``test_tiny_adacof`` has the AdaCoF aux contract (kernels + occlusion) and uses the real
``vfikit.ops.adacof`` (clean convention, the "torch" backend by default: the numba backend's OpenMP
threads keep spinning after each call, which slows the tiny torch ops of these tests ~100x on a
busy 2-core machine); ``test_tiny_arbitrary`` takes t as an input.
``tiny_models()`` registers them for a block only (the ``tiny_models`` fixture of tests/conftest.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from vfikit.errors import VfikitError
from vfikit.models.base import VFIModel
from vfikit.models.catalog import registered
from vfikit.ops import adacof


class TinyAdaCoF(VFIModel):
    arbitrary_t = False

    def __init__(self, channels: int = 8, kernel_size: int = 3, backend: str = "torch") -> None:
        super().__init__()
        self.backend = backend
        taps = kernel_size * kernel_size
        self.body = nn.Sequential(nn.Conv2d(6, channels, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU())
        self.heads = nn.ModuleDict({k: nn.Conv2d(channels, taps, 3, padding=1)
                                    for k in ("w1", "oy1", "ox1", "w2", "oy2", "ox2")})
        self.occlusion = nn.Conv2d(channels, 1, 3, padding=1)

    def forward(self, frame0, frame1, t=None, return_aux=False):
        if t is not None and not bool(torch.all(torch.as_tensor(t) == 0.5)):
            raise VfikitError(f"TinyAdaCoF only computes t = 0.5, got {t}")
        feat = self.body(torch.cat([frame0 - 0.5, frame1 - 0.5], 1))
        h = {k: m(feat) for k, m in self.heads.items()}
        w1, w2 = F.softmax(h["w1"], 1), F.softmax(h["w2"], 1)
        y1 = adacof(frame0, w1, h["oy1"], h["ox1"], convention="clean", backend=self.backend)
        y2 = adacof(frame1, w2, h["oy2"], h["ox2"], convention="clean", backend=self.backend)
        occ = torch.sigmoid(self.occlusion(feat))
        out = occ * y1 + (1 - occ) * y2
        if return_aux:
            return out, {"kernels": [(w1, h["oy1"], h["ox1"]), (w2, h["oy2"], h["ox2"])], "occlusion": occ}
        return out


class TinyArbitrary(VFIModel):
    arbitrary_t = True

    def __init__(self, channels: int = 8) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(7, channels, 3, padding=1), nn.ReLU(), nn.Conv2d(channels, 3, 3, padding=1))

    def forward(self, frame0, frame1, t=None, return_aux=False):
        b, _, h, w = frame0.shape
        t = torch.full((b,), 0.5) if t is None else torch.as_tensor(t, dtype=frame0.dtype).reshape(-1).expand(b)
        tmap = t.to(frame0).view(b, 1, 1, 1).expand(b, 1, h, w)
        base = (1 - tmap) * frame0 + tmap * frame1
        out = base + self.net(torch.cat([frame0, frame1, tmap], 1))
        return (out, {}) if return_aux else out


@contextmanager
def tiny_models() -> Iterator[None]:
    """The tiny models in the catalog (``test_tiny_adacof``, ``test_tiny_arbitrary``) for the block only."""
    with registered("test_tiny_adacof", TinyAdaCoF, family="test", description="tiny test model"), \
            registered("test_tiny_arbitrary", TinyArbitrary, family="test", description="tiny test model",
                       arbitrary_t=True):
        yield


def ddp_worker(rank: int, world: int, port: int, raw_cfg: dict, out_path: str) -> None:
    """One process of a DDP training run (torch.multiprocessing.spawn target); rank 0 saves the weights."""
    import os

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    from vfikit.config import config_from_dict
    from vfikit.engine import distributed
    from vfikit.engine.train import train

    try:
        with tiny_models():
            result = train(config_from_dict(raw_cfg), log=lambda _msg: None)
        if rank == 0:
            torch.save({"model": result.model.state_dict(), "step": result.step}, out_path)
    finally:
        distributed.teardown()
