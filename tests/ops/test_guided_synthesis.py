"""The fused CPU synthesis of guided_adacof agrees with its reference twin (the unfused model path)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.helpers import texture
from vfikit.errors import VfikitError
from vfikit.hub import create_model
from vfikit.ops import adacof
from vfikit.ops.guided_synthesis import guided_adacof_synthesis


def unfused(x0, x1, k0, k1, occ, f0, f1, b0, dilation):
    """What guided_adacof computes without the fused pass: upsample, add the flow, sample (reference
    backend), blend."""
    scale = x0.shape[-1] // occ.shape[-1]

    def up(v):
        return F.interpolate(v, scale_factor=scale, mode="bilinear", align_corners=False) if scale > 1 else v

    preds = []
    for x, (w, oy, ox), f in ((x0, k0, f0), (x1, k1, f1)):
        preds.append(adacof(x, up(w), f[:, 1:] + up(oy), f[:, :1] + up(ox), dilation, convention="clean",
                            backend="reference"))
    v = torch.sigmoid(torch.logit(b0) + up(occ))
    return v * preds[0] + (1 - v) * preds[1]


@pytest.mark.parametrize("scale,dilation,layout", [(1, 1, "nchw"), (2, 1, "nchw"), (2, 2, "nchw"),
                                                   (1, 1, "channels_last"), (2, 1, "channels_last")])
@pytest.mark.slow
def test_fused_synthesis_matches_the_unfused_twin(scale, dilation, layout):
    torch.manual_seed(scale + dilation)
    n, h, w = 2, 24, 36
    x0, x1 = torch.rand(n, 3, h, w), torch.rand(n, 3, h, w)
    f0, f1 = torch.randn(n, 2, h, w) * 4, torch.randn(n, 2, h, w) * 4  # many taps land outside: clamped
    b0 = torch.rand(n, 1, h, w) * 0.98 + 0.01

    def kernel():
        return (torch.randn(n, 25, h // scale, w // scale) * 0.2, torch.randn(n, 25, h // scale, w // scale),
                torch.randn(n, 25, h // scale, w // scale))

    k0, k1, occ = kernel(), kernel(), torch.randn(n, 1, h // scale, w // scale)
    ref = unfused(x0, x1, k0, k1, occ, f0, f1, b0, dilation)
    if layout == "channels_last":  # as the network and the Interpolator leave them: read in place
        x0, x1, f0, f1, b0, occ = (v.contiguous(memory_format=torch.channels_last) for v in (x0, x1, f0, f1, b0, occ))
        k0, k1 = (tuple(v.contiguous(memory_format=torch.channels_last) for v in k) for k in (k0, k1))
    fast = guided_adacof_synthesis(x0, x1, k0, k1, occ, f0, f1, b0, dilation)
    assert fast.shape == (n, 3, h, w)
    torch.testing.assert_close(fast, ref, rtol=0, atol=2e-5)
    # signed taps formed inside the pass equal signed taps formed before it
    raw0, raw1 = k0[0] * 3, k1[0] * 3

    def signed(r):
        out = r - r.mean(1, keepdim=True)
        out[:, r.shape[1] // 2] += 1
        return out

    # bfloat16 heads (a bf16 network's output) are read as they are: the same as converting them first
    occh = occ.bfloat16()
    k0h, k1h = (tuple(v.bfloat16() for v in k) for k in (k0, k1))
    as_bf16 = guided_adacof_synthesis(x0, x1, k0h, k1h, occh, f0, f1, b0, dilation)
    converted = guided_adacof_synthesis(x0, x1, tuple(v.float() for v in k0h), tuple(v.float() for v in k1h),
                                        occh.float(), f0, f1, b0, dilation)
    torch.testing.assert_close(as_bf16, converted, rtol=0, atol=1e-6)
    inside = guided_adacof_synthesis(x0, x1, (raw0, *k0[1:]), (raw1, *k1[1:]), occ, f0, f1, b0, dilation,
                                     signed_taps=True)
    before = guided_adacof_synthesis(x0, x1, (signed(raw0), *k0[1:]), (signed(raw1), *k1[1:]), occ, f0, f1, b0,
                                     dilation)
    torch.testing.assert_close(inside, before, rtol=0, atol=2e-5)
    # a changed tap of frame1 changes the result: the pass really reads every input
    k1[0][:, 3] += 1.0
    assert (guided_adacof_synthesis(x0, x1, k0, k1, occ, f0, f1, b0, dilation) - fast).abs().max() > 1e-3


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("scale", [1, 2])
def test_fused_synthesis_agrees_with_the_twin_at_each_head_dtype(dtype, scale):
    """Heads as a float32 or a bfloat16 network leaves them (channels-last, several threads' row chunks, two
    images): the fused pass equals the unfused twin computed in float32 from the same head values."""
    torch.manual_seed(7 + scale)
    n, h, w = 2, 40, 52
    x0, x1 = torch.rand(n, 3, h, w), torch.rand(n, 3, h, w)
    f0, f1 = torch.randn(n, 2, h, w) * 3, torch.randn(n, 2, h, w) * 3
    b0 = torch.rand(n, 1, h, w) * 0.98 + 0.01

    def head(channels, std):
        v = torch.randn(n, channels, h // scale, w // scale) * std
        return v.to(dtype).contiguous(memory_format=torch.channels_last)

    k0, k1 = ((head(25, 0.2), head(25, 1.0), head(25, 1.0)) for _ in range(2))
    occ = head(1, 1.0)
    ref = unfused(x0, x1, tuple(v.float() for v in k0), tuple(v.float() for v in k1), occ.float(), f0, f1, b0, 1)
    torch.testing.assert_close(guided_adacof_synthesis(x0, x1, k0, k1, occ, f0, f1, b0), ref, rtol=0, atol=2e-5)


def test_fused_synthesis_refuses_what_it_cannot_compute():
    x = torch.rand(1, 3, 8, 8)
    k = (torch.rand(1, 25, 4, 4),) * 3
    flow, b0, occ = torch.zeros(1, 2, 8, 8), torch.full((1, 1, 8, 8), 0.5), torch.zeros(1, 1, 4, 4)
    with pytest.raises(VfikitError, match="float32"):
        guided_adacof_synthesis(x.double(), x, k, k, occ, flow, flow, b0)
    with pytest.raises(VfikitError, match="all be float32 or all bfloat16"):
        guided_adacof_synthesis(x, x, k, k, occ.bfloat16(), flow, flow, b0)
    with pytest.raises(VfikitError, match="3 channels"):
        guided_adacof_synthesis(torch.rand(1, 4, 8, 8), torch.rand(1, 4, 8, 8), k, k, occ, flow, flow, b0)
    with pytest.raises(VfikitError, match="odd square"):
        guided_adacof_synthesis(x, x, (torch.rand(1, 16, 4, 4),) * 3, k, occ, flow, flow, b0)
    with pytest.raises(VfikitError, match=r"kernel1\[1\] has shape"):  # the loop has no bounds checks: refused
        guided_adacof_synthesis(x, x, k, (k[0], torch.rand(1, 25, 4, 3), k[2]), occ, flow, flow, b0)
    with pytest.raises(VfikitError, match="flow1 has shape"):
        guided_adacof_synthesis(x, x, k, k, occ, flow, flow[..., :7], b0)
    with pytest.raises(VfikitError, match="dilation"):
        guided_adacof_synthesis(x, x, k, k, occ, flow, flow, b0, 0)
    with pytest.raises(VfikitError, match="divide"):
        guided_adacof_synthesis(x, x, (torch.rand(1, 25, 3, 4),) * 3, k, occ, flow, flow, b0)


@pytest.mark.parametrize("net_downscale", [1, 2])
def test_model_forward_fused_equals_unfused(net_downscale):
    torch.manual_seed(0)
    model = create_model("guided_adacof_k5", net_downscale=net_downscale).eval()
    with torch.no_grad():  # trained-looking heads: every output channel non-zero
        for head in model.heads.values():
            head[-1].weight.normal_(0, 0.02)
            head[-1].bias.normal_(0, 0.1)
    big = texture(90, 120, seed=4)[None]
    f0, f1 = big[..., 3:78, 2:103], big[..., 9:84, 9:110]  # 75 x 101: padded inside the model
    with torch.no_grad():
        assert model._use_fused(f0, return_aux=False)
        fast = model(f0, f1)
        model.fused = False
        ref = model(f0, f1)
        aux_out, aux = create_model("guided_adacof_k5", net_downscale=net_downscale).eval()(f0, f1, return_aux=True)
    assert fast.shape == ref.shape == f0.shape
    torch.testing.assert_close(fast, ref, rtol=0, atol=5e-5)
    assert (fast - model.guide(f0, f1)).abs().max() > 1e-3  # the heads do change the frame
    assert "kernels" in aux and aux_out.shape == f0.shape  # return_aux keeps the unfused path


def test_fused_path_is_only_taken_where_it_applies(monkeypatch):
    model = create_model("guided_adacof_k5").eval()
    x = torch.rand(1, 3, 32, 32)
    assert not model._use_fused(x, False)  # gradients enabled: training needs the unfused path
    with torch.no_grad():
        assert model._use_fused(x, False)
        assert not model._use_fused(x, True)  # aux needs the kernels
        assert not model._use_fused(x.double(), False)
        assert not create_model("guided_cdfi")._use_fused(x, False)
        assert not create_model("guided_dsepconv")._use_fused(x, False)
        monkeypatch.setenv("VFIKIT_OPS_BACKEND", "reference")
        assert not model._use_fused(x, False)
