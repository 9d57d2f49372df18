"""guided_dsepconv: DSepConv kernels placed by DIS flow, any t (starts as flow_dis, warm start, gradients)."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import shifted_pair
from vfikit.errors import VfikitError
from vfikit.hub import create_model, save_vfikit
from vfikit.models.catalog import get_entry
from vfikit.models.guided import DSEP_HEADS, GUIDED_DSEP_WIDTHS, GuidedDSepConv


def model_(**kw) -> GuidedDSepConv:
    torch.manual_seed(0)
    return create_model("guided_dsepconv", **kw).eval()


def _perturb_heads(model, std: float = 1e-2, names=None) -> None:
    with torch.no_grad():
        for name, module in model.heads.items():
            if names is None or name in names:
                module[-1].weight.normal_(0, std)
                module[-1].bias.normal_(0, std)


def test_registered_for_any_t_with_its_class():
    entry = get_entry("guided_dsepconv")
    model = model_()
    assert entry.family == "guided" and entry.arbitrary_t and type(model).arbitrary_t
    assert model.model_args["time_input"] is True and "dilation" not in model.model_args
    assert set(model.heads) == set(DSEP_HEADS)


@pytest.mark.parametrize("net_downscale", [1, 2])
def test_untrained_model_is_flow_dis_at_any_t(net_downscale):
    f0, _, f1 = shifted_pair(6, -4, h=45, w=70)
    f0, f1 = torch.cat([f0, f1]), torch.cat([f1, f0])
    model, guide = model_(net_downscale=net_downscale), create_model("flow_dis")
    t = torch.tensor([0.25, 0.8])
    with torch.no_grad():
        ours, base = model(f0, f1, t=t), guide(f0, f1, t=t)
    assert ours.shape == f0.shape
    assert torch.allclose(ours, base, atol=1e-3)  # blend weights are clamped to [1e-3, 1 - 1e-3]
    with torch.no_grad():  # and t matters: another t gives another frame
        assert (model(f0, f1, t=0.5) - ours).abs().max() > 1e-2


def test_kernels_are_signed_separable_and_masks_start_at_one():
    model = model_()
    f0, _, f1 = shifted_pair(2, 2)
    with torch.no_grad():
        _, aux = model(f0, f1, t=0.3, return_aux=True)
        v, h, oy, ox, mask = aux["kernels"][0]
        assert v.shape[1] == h.shape[1] == 5 and oy.shape[1] == ox.shape[1] == mask.shape[1] == 25
        assert torch.equal(v[0, :, 0, 0], torch.eye(5)[2]) and torch.equal(mask, torch.ones_like(mask))
        # every tap of a kernel sits where the guide's flow points (zero residual offsets)
        flow = torch.nn.functional.pad(aux["flow_t0"], (0, oy.shape[-1] - 64 - 32, 0, oy.shape[-2] - 64))
        assert torch.allclose(oy[:, :1, :64, :96], flow[:, 1:, :64, :96])
        _perturb_heads(model, std=0.5)
        _, aux = model(f0, f1, t=0.3, return_aux=True)
        v, h, *_ = aux["kernels"][1]
    assert torch.allclose(v.sum(1), torch.ones_like(v[:, 0]), atol=1e-5) and (v < 0).any()
    assert torch.allclose(h.sum(1), torch.ones_like(h[:, 0]), atol=1e-5) and (h < 0).any()


def test_t_enters_the_network():
    model = model_()
    _perturb_heads(model, std=0.3)
    f0, _, f1 = shifted_pair(4, 0)
    with torch.no_grad():
        before = model(f0, f1, t=0.25)
        model.unet.conv1[0].weight[:, -1].fill_(0.5)  # the t channel is the last input channel
        after = model(f0, f1, t=0.25)
    assert (before - after).abs().max() > 1e-4


def test_gradients_reach_every_head_and_the_unet():
    model = model_().train()
    f0, mid, f1 = shifted_pair(4, 2, h=37, w=53)
    out = model(f0, f1, t=0.5)
    ((out - mid) ** 2).mean().backward()
    for name in DSEP_HEADS:  # zero-initialised last convs still learn at the first step
        assert model.heads[name][-1].weight.grad.abs().sum() > 0, name
    model.zero_grad()
    _perturb_heads(model, std=1e-3)
    out = model(f0, f1, t=torch.tensor([0.3]))
    ((out - mid) ** 2).mean().backward()
    for key, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), key
        assert p.grad.abs().sum() > 0, key


def test_warm_start_reproduces_a_guided_adacof_with_centre_taps():
    """Copying a trained guided_adacof: with its tap-weight heads at zero (centre taps only) the warm
    started model computes the same frame at t = 0.5 (its new 1-D kernel and mask heads start neutral)."""
    torch.manual_seed(1)
    source = create_model("guided_adacof_k5").eval()
    _perturb_heads(source, std=0.05, names={"offset_y1", "offset_x1", "offset_y2", "offset_x2", "occlusion"})
    with torch.no_grad():
        for p in source.unet.parameters():
            p.add_(0.01 * torch.randn_like(p))
    model = model_()
    copied = model.warm_start(source)
    assert "unet.conv1.0.weight" in copied and "heads.offset_x2.7.weight" in copied
    assert torch.equal(model.unet.conv1[0].weight[:, -1], torch.zeros_like(model.unet.conv1[0].weight[:, -1]))
    f0, _, f1 = shifted_pair(6, 2)
    with torch.no_grad():
        assert torch.allclose(model(f0, f1, t=0.5), source(f0, f1), atol=1e-5)
    with pytest.raises(VfikitError, match="guided_adacof"):
        model.warm_start(create_model("flow_dis"))


def test_vfikit_file_round_trip_keeps_the_build_arguments(tmp_path):
    model = model_(net_downscale=2)
    _perturb_heads(model)
    path = save_vfikit(model, tmp_path / "g.vfikit", arch="guided_dsepconv")
    again = create_model("guided_dsepconv", weights=str(path))
    assert again.net_downscale == 2
    f0, _, f1 = shifted_pair(2, 2)
    with torch.no_grad():
        assert torch.equal(model(f0, f1, t=0.7), again(f0, f1, t=0.7))


def test_bad_settings_are_clear_errors():
    with pytest.raises(VfikitError, match="dilation"):
        create_model("guided_dsepconv", dilation=2)
    with pytest.raises(VfikitError, match="net_downscale"):
        create_model("guided_dsepconv", net_downscale=3)
    with pytest.raises(VfikitError, match="lack head"):
        create_model("guided_dsepconv", channels={k: v for k, v in GUIDED_DSEP_WIDTHS.items() if k != "mask2"})
    f0, _, f1 = shifted_pair(2, 2)
    with pytest.raises(VfikitError, match=r"\[0, 1\]"):
        model_()(f0, f1, t=1.5)
