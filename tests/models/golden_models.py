"""Helpers for the model golden tests: the shared weight recipe and the official input pipelines.

The recipe is ``../shared/reference/golden/README.md`` section 4, written here in our own words.
"""

from __future__ import annotations

import json
import math
import re
from collections import OrderedDict

import numpy as np
import torch
from PIL import Image

from tests.conftest import SHARED

REFERENCE = SHARED / "reference"
GOLDEN = REFERENCE / "golden"
MANIFESTS = REFERENCE / "manifests"

# First matching pattern decides the gain of a conv weight (README section 4).
_GAINS = (
    (r"^net(Vertical|Horizontal)[12]\.7\.weight$", 0.05),
    (r"^module(Vertical|Horizontal)[12]\.7\.weight$", 0.7),
    (r"^moduleBias\.7\.weight$", 0.1),
    (r"\.conv(3x3|1x1|1x1_)\.weight$", math.sqrt(2.0 / 3.0)),
    (r"^context_synthesis\.", 1.0),
    (r".*", math.sqrt(2.0)),
)


def skip_reason() -> str | None:
    if not GOLDEN.is_dir() or not MANIFESTS.is_dir():
        return f"shared reference data not found at {REFERENCE} (golden fixtures and manifests)"
    return None


def load_manifest(name: str) -> list[tuple[str, tuple[int, ...]]]:
    data = json.loads((MANIFESTS / f"{name}.json").read_text())
    return [(k, tuple(s)) for k, s in data["state_dict"]]


def golden_state_dict(manifest: str) -> OrderedDict[str, torch.Tensor]:
    """Deterministic synthetic weights for ``manifest`` (keys exactly as in the manifest)."""
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for k, (key, shape) in enumerate(load_manifest(manifest)):
        gen = torch.Generator().manual_seed(1000 + k)
        if key.endswith("weight") and len(shape) >= 2:
            gain = next(g for pattern, g in _GAINS if re.search(pattern, key))
            scale = gain / math.sqrt(math.prod(shape[1:]))
            out[key] = torch.randn(shape, generator=gen, dtype=torch.float32) * scale
        elif key.endswith("weight") and shape == (1,):
            out[key] = torch.full(shape, 0.25)
        else:
            out[key] = torch.randn(shape, generator=gen, dtype=torch.float32) * 0.01
    return out


def input_uint8() -> tuple[np.ndarray, np.ndarray]:
    """The two golden input crops as (H, W, 3) uint8 RGB arrays."""
    a = np.asarray(Image.open(GOLDEN / "inputs" / "frame10_crop.png").convert("RGB"))
    b = np.asarray(Image.open(GOLDEN / "inputs" / "frame11_crop.png").convert("RGB"))
    return a, b


def to_tensor(arr: np.ndarray, scaling: str) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, H, W) float32: ``"div"`` = /255 (ToTensor, OpenCV pipelines),
    ``"mul"`` = * float32(1/255) (sepconv-slomo)."""
    x = arr.astype(np.float32)
    x = x * np.float32(1.0 / 255.0) if scaling == "mul" else x / np.float32(255.0)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]


def golden_output(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(output (1, 3, 70, 100) in the model's channel order, fragile mask (70, 100))."""
    return np.load(GOLDEN / "outputs" / f"{name}.npy"), np.load(GOLDEN / "outputs" / f"{name}_fragile.npy")
