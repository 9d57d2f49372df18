"""Helpers shared by tests of several folders (test files import from here, never from one another)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

# ---------------------------------------------------------------- images and motion (models, ops)

def texture(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """A smooth random colour texture (3, H, W) in [0, 1] with detail at several scales."""
    g = torch.Generator().manual_seed(seed)
    out = torch.zeros(1, 3, h, w)
    for cells, amp in ((6, 0.5), (14, 0.3), (30, 0.2)):
        coarse = torch.rand(1, 3, cells, cells * w // h, generator=g)
        out += amp * F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)
    return out[0].clamp(0, 1)


def shifted_pair(dx: float, dy: float, h: int = 64, w: int = 96):
    """A texture and the same texture moved by (dx, dy) px, plus the true midpoint (exact shifts)."""
    big = texture(h + 32, w + 32, seed=3)

    def view(ox: int, oy: int) -> torch.Tensor:
        return big[:, 16 - oy:16 - oy + h, 16 - ox:16 - ox + w][None]

    return view(0, 0), view(int(dx / 2), int(dy / 2)), view(int(dx), int(dy))


# ---------------------------------------------------------------- compression

SMALL_ADACOF = {  # a narrow AdaCoF-family spec so the tests stay fast
    "conv1": [8, 8, 8], "conv2": [12, 12, 12], "conv3": [16, 16, 16], "conv4": [16, 16, 16], "conv5": [16, 16, 16],
    "deconv5": [16, 16, 16], "upsample5": [16], "deconv4": [16, 16, 16], "upsample4": [16],
    "deconv3": [16, 16, 16], "upsample3": [16], "deconv2": [12, 12, 12], "upsample2": [12],
    "weight1": [12, 12, 8], "offset_y1": [12, 12, 8], "offset_x1": [12, 12, 8], "weight2": [12, 12, 8],
    "offset_y2": [12, 12, 8], "offset_x2": [12, 12, 8], "occlusion": [12, 12, 8],
}


# ---------------------------------------------------------------- benchmark folders (data, evaluation)

_RNG = np.random.default_rng(7)


def png(path: Path, w: int = 10, h: int = 8) -> np.ndarray:
    """Write a random 8-bit RGB PNG; returns the array written (H, W, 3)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = _RNG.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)
    return arr


def as_tensor(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(arr.astype(np.float32) / 255.0).permute(2, 0, 1)


def make_middlebury_cdfi(root: Path, seqs=("Venus", "Beanbags")) -> dict:
    arrays = {}
    for s in seqs:
        arrays[s] = (png(root / "input" / s / "frame10.png"), png(root / "input" / s / "frame11.png"),
                     png(root / "gt" / s / "frame10i11.png"))
    return arrays


# ---------------------------------------------------------------- LPIPS weights (metrics, evaluation)

FIRES = {3: (64, 16, 64), 4: (128, 16, 64), 6: (128, 32, 128), 7: (256, 32, 128),
         9: (256, 48, 192), 10: (384, 48, 192), 11: (384, 64, 256), 12: (512, 64, 256)}
TAPS = (64, 128, 256, 384, 384, 512, 512)


def random_lpips_weights(seed=0):
    """torchvision squeezenet1_1 'features.*' keys and lpips-package 'lin{k}.model.1.weight' keys."""
    g = torch.Generator().manual_seed(seed)
    backbone = {"features.0.weight": torch.randn(64, 3, 3, 3, generator=g) * 0.3,
                "features.0.bias": torch.randn(64, generator=g) * 0.1}
    for i, (cin, sq, ex) in FIRES.items():
        for name, shape in (("squeeze", (sq, cin, 1, 1)), ("expand1x1", (ex, sq, 1, 1)), ("expand3x3", (ex, sq, 3, 3))):
            fan = shape[1] * shape[2] * shape[3]
            backbone[f"features.{i}.{name}.weight"] = torch.randn(shape, generator=g) * math.sqrt(2 / fan)
            backbone[f"features.{i}.{name}.bias"] = torch.randn(shape[0], generator=g) * 0.01
    lins = {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1, generator=g) * 0.1 for k, c in enumerate(TAPS)}
    return backbone, lins
