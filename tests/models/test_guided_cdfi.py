"""guided_cdfi: CDFI's stage II (feature pyramid warped per level + GridNet) on a flow-guided AdaCoF."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import shifted_pair
from vfikit.errors import VfikitError
from vfikit.hub import save_vfikit
from vfikit.models.guided import GuidedCDFI, grow_guided_cdfi
from vfikit.registry import create_model, get_entry

SMALL = {"pyramid": [4, 4], "grid_widths": [8, 12, 16]}


def _trained_like_stage_one():
    """A guided_adacof with non-zero heads and a perturbed U-Net (as a trained stage-I model would be)."""
    torch.manual_seed(0)
    source = create_model("guided_adacof_k5").eval()
    with torch.no_grad():
        for module in source.heads.values():
            module[-1].weight.normal_(0, 0.02)
        for p in source.unet.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return source


def test_grown_model_starts_exactly_as_its_stage_one_model():
    source = _trained_like_stage_one()
    model = grow_guided_cdfi(source, **SMALL).eval()
    assert isinstance(model, GuidedCDFI) and model.model_args["pyramid"] == [4, 4]
    assert get_entry("guided_cdfi").family == "guided" and not get_entry("guided_cdfi").arbitrary_t
    f0, _, f1 = shifted_pair(5, -3, h=45, w=70)
    with torch.no_grad():
        out, aux = model(f0, f1, return_aux=True)
        source.fused = False  # stage II always runs the unfused path; the fused pass agrees to 1e-5 (its own test)
        assert torch.equal(out, source(f0, f1))
    assert aux["blend"].shape == (1, 1, 64, 96)
    with pytest.raises(VfikitError, match="guided_adacof"):
        grow_guided_cdfi(create_model("guided_dsepconv"))


def test_level_warp_keeps_constants_and_moves_features_with_the_flow():
    model = create_model("guided_cdfi", **SMALL)
    b, taps, hp, wp = 1, 25, 32, 32
    weight = torch.randn(b, taps, hp, wp)
    weight = weight - weight.mean(1, keepdim=True) + 1 / taps  # signed, sums to one
    zero = torch.zeros(b, taps, hp, wp)
    const = torch.full((b, 3, hp // 2, wp // 2), 0.7)
    out = model._warp_level(const, (weight, zero, zero), (hp, wp))
    assert out.shape == (b, 3, hp, wp) and torch.allclose(out, torch.full_like(out, 0.7), atol=1e-5)
    # a centre-only kernel with a flow of +4 px (full resolution) reads 2 px to the right at half resolution
    centre = torch.zeros(b, taps, hp, wp)
    centre[:, taps // 2] = 1
    ramp = torch.arange(wp // 2, dtype=torch.float32).expand(b, 1, hp // 2, wp // 2).contiguous()
    moved = model._warp_level(ramp, (centre, zero, torch.full_like(zero, 4.0)), (hp, wp))
    still = model._warp_level(ramp, (centre, zero, zero), (hp, wp))
    assert torch.allclose((moved - still)[..., 8:-8, 8:-8], torch.full((b, 1, hp - 16, wp - 16), 2.0), atol=1e-4)


def test_gradients_reach_the_pyramid_and_the_gridnet_once_it_is_not_zero():
    model = grow_guided_cdfi(_trained_like_stage_one(), **SMALL).train()
    f0, mid, f1 = shifted_pair(4, 2, h=37, w=53)
    ((model(f0, f1) - mid) ** 2).mean().backward()
    final = model.synthesis.lateral_final
    assert final.f[-1].weight.grad.abs().sum() > 0  # the zeroed last layer learns at the first step
    model.zero_grad()
    with torch.no_grad():
        for conv in (final.f[-1], final.conv):
            conv.weight.normal_(0, 1e-2)
    ((model(f0, f1) - mid) ** 2).mean().backward()
    for key, p in model.named_parameters():
        if key.startswith(("pyramid.", "synthesis.")) and not key.endswith("bias"):
            assert p.grad is not None and p.grad.abs().sum() > 0, key


def test_round_trip_and_bad_settings(tmp_path):
    model = grow_guided_cdfi(_trained_like_stage_one(), **SMALL).eval()
    path = save_vfikit(model, tmp_path / "c.vfikit", arch="guided_cdfi")
    again = create_model("guided_cdfi", weights=str(path))
    f0, _, f1 = shifted_pair(2, 2)
    with torch.no_grad():
        assert torch.equal(model(f0, f1), again(f0, f1))
    with pytest.raises(VfikitError, match="pyramid"):
        create_model("guided_cdfi", pyramid=[])
    with pytest.raises(VfikitError, match="grid_widths"):
        create_model("guided_cdfi", grid_widths=[8, 8])


def test_compress_grow_cdfi_command_grows_a_guided_checkpoint(tmp_path):
    from vfikit.cli import main
    from vfikit.hub import load_trained_model

    source = _trained_like_stage_one()
    args = {k: v for k, v in source.model_args.items() if k not in ("convention", "channel_order")}
    ckpt = tmp_path / "stage1.pt"
    torch.save({"model": source.state_dict(), "arch": "guided_adacof_k5", "model_args": args}, ckpt)
    assert main(["compress", "--grow-cdfi", str(ckpt), "--out", str(tmp_path / "stage2.pt")]) == 0
    grown = load_trained_model(tmp_path / "stage2.pt")
    assert isinstance(grown, GuidedCDFI)
    f0, _, f1 = shifted_pair(3, 1)
    source.fused = False  # the unfused path, as stage II runs it
    with torch.no_grad():
        assert torch.equal(grown(f0, f1), source(f0, f1))
