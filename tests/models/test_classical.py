"""The weight-free baselines: overlay (exact formula) and flow_dis (recovers known motion)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.helpers import texture
from vfikit.errors import VfikitError, VfikitTypeError
from vfikit.hub import create_model
from vfikit.metrics import psnr
from vfikit.models.base import VFIModel
from vfikit.models.catalog import get_entry, list_models
from vfikit.models.classical import FlowDIS, Overlay


def test_registered_and_contract():
    assert {"overlay", "flow_dis"} <= set(list_models())
    for name, cls in (("overlay", Overlay), ("flow_dis", FlowDIS)):
        entry = get_entry(name)
        assert entry.arbitrary_t and entry.family == "classical"
        model = create_model(name)
        assert isinstance(model, cls) and isinstance(model, VFIModel)
        assert model.arbitrary_t and not model.training
        assert sum(p.numel() for p in model.parameters()) == 0


def test_overlay_is_the_time_weighted_blend():
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(2, 3, 5, 7, generator=g), torch.rand(2, 3, 5, 7, generator=g)
    model = Overlay()
    torch.testing.assert_close(model(a, b), (a + b) / 2, rtol=0, atol=1e-7)
    torch.testing.assert_close(model(a, b, t=0.25), 0.75 * a + 0.25 * b, rtol=0, atol=1e-7)
    t = torch.tensor([0.0, 1.0])
    out, aux = model(a, b, t=t, return_aux=True)
    assert torch.equal(out[0], a[0]) and torch.equal(out[1], b[1]) and aux == {}


def test_input_errors():
    model = Overlay()
    x = torch.zeros(1, 3, 4, 4)
    with pytest.raises(VfikitError, match=r"\[0, 1\]"):
        model(x, x, t=1.5)
    with pytest.raises(VfikitError, match="differ in shape"):
        model(x, torch.zeros(1, 3, 4, 5))
    with pytest.raises(VfikitError, match=r"\(B, 3, H, W\)"):
        model(x[0], x[0])
    with pytest.raises(VfikitTypeError, match="float"):
        model(x.to(torch.uint8), x.to(torch.uint8))
    with pytest.raises(VfikitError, match="with B=1"):
        model(x, x, t=torch.tensor([0.5, 0.5]))
    with pytest.raises(VfikitError, match="unknown DIS preset"):
        FlowDIS(preset="slow")
    with pytest.raises(VfikitError, match="occlusion_strength"):
        FlowDIS(occlusion_strength=2.0)
    with pytest.raises(VfikitError, match="unknown settings"):
        create_model("flow_dis", blur=3)


@pytest.mark.parametrize("t", [0.5, 0.25])
def test_flow_dis_recovers_a_translation(t):
    big = texture(96, 160)
    shift = 8  # frame1 shows the scene moved 8 px to the left
    f0, f1 = big[:, :, 16:144], big[:, :, 16 + shift:144 + shift]
    s = round(t * shift)
    truth = big[:, :, 16 + s:144 + s]
    out = FlowDIS()(f0[None], f1[None], t=t)[0]
    inner = (slice(None), slice(8, -8), slice(16, -16))  # away from the borders that enter / leave the view
    ours = psnr(out[inner], truth[inner])
    blend = psnr(Overlay()(f0[None], f1[None], t=t)[0][inner], truth[inner])
    assert ours > 40, ours
    assert ours > blend + 10


def test_flow_dis_endpoints_and_batch():
    a, b = texture(48, 64, seed=2)[None], texture(48, 64, seed=3)[None]
    model = FlowDIS()
    torch.testing.assert_close(model(a, b, t=0.0), a, rtol=0, atol=1e-6)
    torch.testing.assert_close(model(a, b, t=1.0), b, rtol=0, atol=1e-6)
    batch = model(torch.cat([a, b]), torch.cat([b, a]), t=torch.tensor([0.3, 0.6]))
    torch.testing.assert_close(batch[0], model(a, b, t=0.3)[0], rtol=0, atol=1e-6)
    torch.testing.assert_close(batch[1], model(b, a, t=0.6)[0], rtol=0, atol=1e-6)
    out, aux = model(a.double(), b.double(), return_aux=True)
    assert out.dtype == torch.float64 and out.shape == a.shape
    assert set(aux) == {"flow_t0", "flow_t1", "visibility"}
    assert aux["flow_t0"].shape == (1, 2, 48, 64) and aux["visibility"].shape == (1, 2, 48, 64)


def test_flow_dis_occlusion_reasoning_fills_uncovered_background():
    """A square moves 12 px right over a static background (true flows given, so DIS is not tested here).

    At t = 0.5 the background left of the square exists only in frame1 and the background right of it
    only in frame0; occlusion reasoning must take each from the right frame, where a plain blend leaves
    a half-transparent ghost of the square.
    """
    h, w, d = 60, 110, 20
    bg = texture(h, w, seed=4).permute(1, 2, 0).numpy()
    fg = (texture(h, w, seed=5) * 0.5 + 0.5).permute(1, 2, 0).numpy()
    frames = []
    for x in (30, 30 + d, 30 + d // 2):  # frame0, frame1, truth
        img = bg.copy()
        img[20:40, x:x + 30] = fg[20:40, x:x + 30]
        frames.append(img)
    f01 = np.zeros((h, w, 2), np.float32)
    f01[20:40, 30:60, 0] = d
    f10 = np.zeros((h, w, 2), np.float32)
    f10[20:40, 30 + d:60 + d, 0] = -d
    truth = torch.from_numpy(frames[2]).permute(2, 0, 1)
    with_occ, aux = FlowDIS(occlusion_strength=1.0).synthesize(frames[0], frames[1], f01, f10, 0.5)
    half, _ = FlowDIS(occlusion_strength=0.5).synthesize(frames[0], frames[1], f01, f10, 0.5)
    without, _ = FlowDIS(occlusion=False).synthesize(frames[0], frames[1], f01, f10, 0.5)
    with_occ, half, without = (torch.from_numpy(o).permute(2, 0, 1) for o in (with_occ, half, without))
    for cols in (slice(33, 38), slice(72, 77)):  # uncovered strips at t
        region = (slice(None), slice(22, 38), cols)
        full_db, half_db, none_db = (psnr(o[region], truth[region]) for o in (with_occ, half, without))
        assert full_db > 40
        assert none_db < 30
        assert none_db + 1 < half_db < full_db  # the default strength 0.5 lies in between
    vis = aux["visibility"]
    assert vis[30, 35, 0] < 0.2 and vis[30, 35, 1] > 0.8  # left strip: only frame1 sees it
    assert vis[30, 74, 0] > 0.8 and vis[30, 74, 1] < 0.2  # right strip: only frame0


def test_coarse_start_flow_is_scaled_back_to_full_size():
    from vfikit.models.classical import _coarse_flow, _dis, _gray_u8

    big = texture(160, 224, seed=7)
    dx, dy = 12, -6  # frame1(p) = frame0(p - d): the flow 0->1 is +d
    f0 = big[:, 16:144, 24:200]
    f1 = big[:, 16 - dy:144 - dy, 24 - dx:200 - dx]
    g0, g1 = (_gray_u8(f.permute(1, 2, 0).numpy()) for f in (f0, f1))
    for k in (1, 2):
        flow = _coarse_flow(_dis(FlowDIS().config), g0, g1, k)
        assert flow.shape == (128, 176, 2) and flow.dtype == np.float32
        inner = flow[24:-24, 24:-24]
        assert abs(np.median(inner[..., 0]) - dx) < 1.0 and abs(np.median(inner[..., 1]) - dy) < 1.0, k


def test_init_scale_setting_changes_the_guide_and_is_checked():
    big = texture(112, 160, seed=8)
    f0, f1 = big[None, :, 8:104, 8:136], big[None, :, 14:110, 2:130]
    one_pass, two = FlowDIS(init_scale=None), FlowDIS()
    assert two.config.init_scale == 2  # the default: a quarter-size DIS starts the full-size one
    a, b = one_pass(f0, f1), two(f0, f1)
    assert (a - b).abs().max() > 1e-4  # a different flow...
    mid = big[None, :, 11:107, 5:133]
    assert psnr(b[0, :, 8:-8, 8:-8], mid[0, :, 8:-8, 8:-8]) > 35  # ...that still recovers the motion
    for side in (24, 32, 48, 63):  # too small to downscale by 4 (DIS refuses images under 12 px): one pass
        tiny = texture(side, side + 8, seed=9)[None]
        torch.testing.assert_close(two(tiny, tiny.flip(-1)), one_pass(tiny, tiny.flip(-1)), rtol=0, atol=0)
    assert (two(f0[..., :64, :80], f1[..., :64, :80]) - one_pass(f0[..., :64, :80], f1[..., :64, :80])).abs().max() > 0
    for bad in (0, 4, True, 1.5):
        with pytest.raises(VfikitError, match="init_scale"):
            FlowDIS(init_scale=bad)


def test_guide_flows_do_not_depend_on_the_order_they_are_computed_in():
    # OpenCV's DIS object keeps state between sizes: reused for the small and the full pass, the second
    # direction's flow came out wrong by up to 200 px on real frames. Swapping the frames must swap the flows.
    big = texture(160, 208, seed=11)
    a = big[:, 8:136, 8:200].permute(1, 2, 0).numpy()
    b = big[:, 20:148, 2:194].permute(1, 2, 0).numpy()
    guide = FlowDIS()
    _, _, f01, f10 = guide._flows(a, b)
    _, _, g01, g10 = guide._flows(b, a)
    np.testing.assert_array_equal(f01, g10)
    np.testing.assert_array_equal(f10, g01)


def test_large_frames_drop_the_variational_refinement_of_the_full_size_pass():
    big = texture(112, 160, seed=12)
    f0, f1 = big[None, :, 8:104, 8:136], big[None, :, 14:110, 2:130]  # 96 x 128
    default, no_rule = FlowDIS(), FlowDIS(large_side=None)
    assert default.config.large_side == 720 and default.config.large_variational_iterations == 0
    # under the threshold the rule changes nothing: the same frame to the bit
    torch.testing.assert_close(FlowDIS(large_side=97)(f0, f1), no_rule(f0, f1), rtol=0, atol=0)
    # at the threshold the full-size pass (not the small one that starts it) runs without refinement
    from vfikit.models.classical import FlowDISConfig, _coarse_flow, _dis, _gray_u8, dis_flow

    g0, g1 = (_gray_u8(f[0].permute(1, 2, 0).numpy()) for f in (f0, f1))
    plain = FlowDISConfig(large_side=None)
    by_hand = _dis(FlowDISConfig(variational_iterations=0)).calc(g0, g1, _coarse_flow(_dis(plain), g0, g1, 2))
    np.testing.assert_array_equal(dis_flow(FlowDISConfig(large_side=96), g0, g1), by_hand)
    assert np.abs(by_hand - dis_flow(plain, g0, g1)).max() > 1e-3
    at = FlowDIS(large_side=96)(f0, f1)
    assert (at - no_rule(f0, f1)).abs().max() > 1e-4
    mid = big[None, :, 11:107, 5:133]
    assert psnr(at[0, :, 8:-8, 8:-8], mid[0, :, 8:-8, 8:-8]) > 35  # still recovers the motion
    for name, bad in (("large_side", 0), ("large_side", True), ("large_variational_iterations", -1),
                      ("variational_iterations", -2)):
        with pytest.raises(VfikitError, match=name):
            FlowDIS(**{name: bad})


def test_flow_dis_takes_its_settings_as_one_flow_dict_too():
    # create_model(name, flow=...) sets the guide of flow_dis and of the flow-guided models alike
    assert FlowDIS(flow={"large_side": None, "init_scale": 1}).config == FlowDIS(large_side=None, init_scale=1).config
    assert create_model("flow_dis", flow={"preset": "fast"}).config.preset == "fast"
    with pytest.raises(VfikitError, match="unknown settings"):
        FlowDIS(flow={"nope": 1})


def test_flow_dis_reuses_the_last_pairs_flows_by_value_in_eval_mode_only(monkeypatch):
    model = create_model("flow_dis")
    a, b = texture(48, 64, seed=1)[None], texture(48, 64, seed=2)[None]
    calls = []
    real = model._flows
    monkeypatch.setattr(model, "_flows", lambda *x: calls.append(1) or real(*x))
    first = model.flows(a, b)
    again = model.flows(a.clone(), b.clone())  # new tensors, same frames: no DIS pass
    assert len(calls) == 1 and all(torch.equal(first[k], again[k]) for k in first)  # one DIS pass (both ways)
    again["flow01"].add_(1.0)  # what a caller does with its copy does not reach the next caller
    assert torch.equal(model.flows(a, b)["flow01"], first["flow01"]) and len(calls) == 1
    changed = b.clone()
    changed[0, 0, 0, 0] += 0.01  # one value differs: a new pair
    model.flows(a, changed)
    assert len(calls) == 2
    model.train()
    model.flows(a, changed)
    assert len(calls) == 3  # training: every call its own DIS pass
    model.eval()
    model.keep_last_pair = False
    model.flows(a, b)
    model.flows(a, b)
    assert len(calls) == 5


def test_a_videos_frames_are_the_same_with_and_without_reusing_the_pairs_flows(monkeypatch):
    """4x through the renderer with a model of any t (midpoint-only models bisect: each call is a new pair): the
    three times of a pair share one DIS pass, and every frame is identical."""
    from vfikit.inference import Interpolator

    base = texture(40, 56, seed=3)
    frames = [torch.roll(base, shifts=(k, 2 * k), dims=(1, 2)) for k in range(3)]
    outputs = {}
    for keep in (True, False):
        model = create_model("guided_dsepconv")
        model.guide.keep_last_pair = keep
        calls = []
        real = model.guide._flows
        monkeypatch.setattr(model.guide, "_flows", lambda *x, c=calls, r=real: c.append(1) or r(*x))
        interp = Interpolator(model, device="cpu", precision="fp32", allow_untrained=True)
        outputs[keep] = [f for _, f in interp.frames(frames, factor=4)]
        assert len(calls) == (2 if keep else 6)  # per pair: one DIS pass (both directions) against three
    assert len(outputs[True]) >= 9  # the 3 sources and 3 frames in each of the 2 gaps (and the last holds)
    assert all(torch.equal(x, y) for x, y in zip(outputs[True], outputs[False], strict=True))
