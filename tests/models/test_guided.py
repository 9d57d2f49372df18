"""guided_adacof: AdaCoF kernels placed by DIS flow (starts as flow_dis, conventions, gradients, errors)."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import shifted_pair
from vfikit.errors import VfikitError
from vfikit.hub import create_model, save_vfikit
from vfikit.models.catalog import get_entry
from vfikit.models.guided import GUIDED_WIDTHS, HEADS, GuidedAdaCoF


def small_model(**kw) -> GuidedAdaCoF:
    torch.manual_seed(0)
    return create_model("guided_adacof_k5", **kw).eval()


def test_registered_with_its_family_and_build_arguments():
    entry = get_entry("guided_adacof_k5")
    assert entry.family == "guided" and not entry.arbitrary_t
    model = small_model()
    assert model.model_args["kernel_size"] == 5 and model.model_args["channels"] == GUIDED_WIDTHS
    assert model.model_args["convention"] == "clean"


@pytest.mark.slow
def test_untrained_model_is_flow_dis():
    f0, _, f1 = shifted_pair(6, -4)
    model, guide = small_model(), create_model("flow_dis")
    with torch.no_grad():
        ours, base = model(f0, f1), guide(f0, f1)
    assert torch.allclose(ours, base, atol=1e-3)  # blend weights are clamped to [1e-3, 1 - 1e-3]


def test_tap_weights_are_signed_and_sum_to_one():
    model = small_model()
    raw = torch.randn(2, 25, 3, 4)
    w = model._tap_weights(raw)
    assert torch.allclose(w.sum(1), torch.ones(2, 3, 4), atol=1e-5)
    assert (w < 0).any()  # sharpening kernels are allowed
    assert torch.equal(model._tap_weights(torch.zeros(1, 25, 1, 1)).flatten(), torch.eye(25)[12])


def _sharp(model: GuidedAdaCoF, v_logit: float) -> GuidedAdaCoF:
    """Zero residuals (so the centre tap alone), V = sigmoid(v_logit + logit(b0))."""
    with torch.no_grad():
        for name, module in model.heads.items():
            module[-1].weight.zero_()
            module[-1].bias.fill_(v_logit if name == "occlusion" else 0.0)
    return model


@pytest.mark.parametrize("flow, axis", [((2.0, 0.0), -1), ((0.0, 3.0), -2)])
def test_flow_channel_zero_moves_columns_and_positive_reads_right_or_down(monkeypatch, flow, axis):
    model = _sharp(small_model(), 60.0)  # V = 1: only frame0's kernels count
    g = torch.Generator().manual_seed(0)
    f0, f1 = torch.rand(1, 3, 20, 24, generator=g), torch.rand(1, 3, 20, 24, generator=g)
    ft0 = torch.tensor(flow).view(1, 2, 1, 1).expand(1, 2, 20, 24)
    zeros = torch.zeros(1, 2, 20, 24)
    monkeypatch.setattr(model, "_guide", lambda a, b, t: (ft0, zeros, torch.ones(1, 2, 20, 24),
                                                          torch.full((1, 1, 20, 24), 0.5), {}))
    with torch.no_grad():
        out = model(f0, f1)
    s = int(max(flow))
    if axis == -1:
        assert torch.allclose(out[..., :-s], f0[..., s:], atol=1e-5)
    else:
        assert torch.allclose(out[..., :-s, :], f0[..., s:, :], atol=1e-5)


def test_blend_map_starts_from_flow_dis_weights(monkeypatch):
    model = _sharp(small_model(), 0.0)
    f0, f1 = torch.zeros(1, 3, 16, 16), torch.ones(1, 3, 16, 16)
    b0 = torch.full((1, 1, 16, 16), 0.8)
    z = torch.zeros(1, 2, 16, 16)
    monkeypatch.setattr(model, "_guide", lambda a, b, t: (z, z, torch.ones(1, 2, 16, 16), b0, {}))
    with torch.no_grad():
        out = model(f0, f1)
    assert torch.allclose(out, torch.full_like(out, 0.2), atol=1e-5)  # 0.8 * 0 + 0.2 * 1


def test_gradients_reach_every_trainable_part_and_any_size_works():
    model = small_model().train()
    f0, mid, f1 = shifted_pair(4, 2, h=37, w=53)
    out, aux = model(f0, f1, return_aux=True)
    assert out.shape == f0.shape and torch.isfinite(out).all()
    assert aux["kernels"][0][0].shape[1] == 25 and aux["flow_t0"].shape == (1, 2, 37, 53)
    ((out - mid) ** 2).mean().backward()
    for name in HEADS:  # zero-initialised last convs still learn at the first step
        assert model.heads[name][-1].weight.grad.abs().sum() > 0, name
    model.zero_grad()
    with torch.no_grad():  # after a step the last convs are non-zero and the gradient reaches the U-Net
        for name in HEADS:
            model.heads[name][-1].weight.normal_(0, 1e-3)
    out = model(f0, f1)
    ((out - mid) ** 2).mean().backward()
    for name in ("unet.conv1.0.weight", "heads.weight1.7.weight", "heads.offset_x2.7.weight",
                 "heads.occlusion.0.weight"):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_vfikit_file_round_trip(tmp_path):
    model = small_model()
    path = save_vfikit(model, tmp_path / "g.vfikit", arch="guided_adacof_k5")
    again = create_model("guided_adacof_k5", weights=str(path))
    f0, _, f1 = shifted_pair(2, 2)
    with torch.no_grad():
        assert torch.equal(model(f0, f1), again(f0, f1))


def test_bad_settings_and_times_are_clear_errors():
    with pytest.raises(VfikitError, match="clean"):
        create_model("guided_adacof_k5", convention="official")
    with pytest.raises(VfikitError, match="odd"):
        create_model("guided_adacof_k5", kernel_size=4)
    with pytest.raises(VfikitError, match="flow settings"):
        create_model("guided_adacof_k5", flow={"nonsense": 1})
    with pytest.raises(VfikitError, match="lack head"):
        create_model("guided_adacof_k5", channels={k: v for k, v in GUIDED_WIDTHS.items() if k != "occlusion"})
    f0, _, f1 = shifted_pair(2, 2)
    with pytest.raises(VfikitError):
        small_model()(f0, f1, t=0.3)
    with pytest.raises(VfikitError):
        small_model()(f0, f1[..., :-1])


def test_fast_variant_takes_the_full_models_weights_and_starts_as_flow_dis():
    full, fast = small_model(), create_model("guided_adacof_k5_fast").eval()
    assert fast.net_downscale == 2 and fast.model_args["net_downscale"] == 2
    assert {k: v.shape for k, v in full.state_dict().items()} == {k: v.shape for k, v in fast.state_dict().items()}
    f0, _, f1 = shifted_pair(6, -4, h=50, w=70)  # not a multiple of 64: padded for the half-resolution U-Net
    with torch.no_grad():
        assert torch.allclose(fast(f0, f1), create_model("flow_dis")(f0, f1), atol=1e-3)
        with torch.no_grad():
            for module in full.heads.values():
                module[-1].weight.normal_(0, 0.05)
        fast.load_state_dict(full.state_dict())
        out, aux = fast(f0, f1, return_aux=True)
    assert out.shape == f0.shape and aux["kernels"][0][0].shape[-2:] == (64, 128)
    assert (out - full(f0, f1)).abs().max() > 1e-4  # the same weights run at another resolution
