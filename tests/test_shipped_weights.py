"""The weights shipped inside the package: they load offline, carry their model card, and interpolate motion."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from vfikit.hub import create_model
from vfikit.models.catalog import get_entry, list_models
from vfikit.runtime import packaged_weights
from vfikit.video.defaults import default_model

SHIPPED = [name for name in list_models(pretrained=True) if name.endswith(".vfikit")]


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1.0 / ((a - b) ** 2).mean()))


def _shifted_pair(shift: float, h: int = 96, w: int = 128):
    """A smooth random texture seen at x - shift/2, x and x + shift/2 (exact sub-pixel resampling)."""
    g = torch.Generator().manual_seed(7)
    coarse = torch.rand(1, 3, h // 6, w // 6 + 4, generator=g)
    tex = F.interpolate(coarse, size=(h, w + 24), mode="bicubic", align_corners=False).clamp(0, 1)

    def view(dx: float) -> torch.Tensor:
        ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                                indexing="ij")
        gx = (xs + 12 + dx) / (w + 23) * 2 - 1
        gy = ys / (h - 1) * 2 - 1
        return F.grid_sample(tex, torch.stack([gx, gy], -1)[None], align_corners=True, padding_mode="border")

    return view(-shift / 2), view(0.0), view(shift / 2)


def test_the_cpu_default_ships_when_any_weights_ship():
    if not SHIPPED:
        pytest.skip("no trained weights are packaged in this checkout")
    assert default_model("cpu") in SHIPPED and default_model("cuda") in SHIPPED


@pytest.mark.parametrize("name", SHIPPED or ["none"])
def test_shipped_weights_load_with_their_card_and_interpolate_motion(name):
    if name == "none":
        pytest.skip("no trained weights are packaged in this checkout")
    arch = name.split(".")[0]
    spec = get_entry(arch).weights["vfikit"]
    path = packaged_weights(spec.filename)
    assert path.is_file() and path.stat().st_size < 12 * 2**20  # the size budget
    card = json.loads(path.with_name(f"{arch}.card.json").read_text())
    assert card["arch"] == arch and card["training"]["steps_run"] > 0 and "Middlebury" in card["data_policy"]
    model = create_model(name)
    assert model.model_args["convention"] == "clean" and model.model_args["channel_order"] == "rgb"
    f0, mid, f1 = _shifted_pair(6.0)
    with torch.no_grad():
        out = model(f0, f1).clamp(0, 1)
    blend = (f0 + f1) / 2
    crop = (..., slice(8, -8), slice(8, -8))  # away from the border, where content leaves the frame
    assert _psnr(out[crop], mid[crop]) > _psnr(blend[crop], mid[crop]) + 6.0
