"""The motion refiner at t: it starts exactly at the guide, takes any t, learns, saves and loads, and its loss
counts only the pixels it should."""

from __future__ import annotations

import pytest
import torch

from vfikit.errors import VfikitError
from vfikit.hub import create_model, save_vfikit
from vfikit.models.motion import MotionRefiner


def _frames(h: int = 64, w: int = 96, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, h // 4 + 4, w // 4 + 4, generator=g)
    big = torch.nn.functional.interpolate(coarse, scale_factor=4, mode="bicubic", align_corners=False).clamp(0, 1)
    return big[..., 8 : 8 + h, 8 : 8 + w].contiguous(), big[..., 5 : 5 + h, 11 : 11 + w].contiguous()


def _pair_of_models(**args):
    torch.manual_seed(0)
    plain = create_model("guided_adacof_k5", **args).eval()
    refined = create_model("guided_adacof_k5", motion={}, **args).eval()
    assert refined.warm_start(plain)  # the same network; the refiner keeps its zero start
    return plain, refined


def test_an_untrained_refiner_returns_the_guide_exactly():
    refiner = MotionRefiner()
    x0, x1 = _frames()
    g = torch.Generator().manual_seed(1)
    f0, f1, logit = (torch.randn(2, c, 64, 96, generator=g) * 3 for c in (2, 2, 1))
    out = refiner(x0.expand(2, -1, -1, -1), x1.expand(2, -1, -1, -1), f0, f1, logit, torch.tensor([0.3, 0.5]))
    assert torch.equal(out[0], f0) and torch.equal(out[1], f1) and torch.equal(out[2], logit)


def test_a_guided_model_with_an_untrained_refiner_computes_what_it_computes_without():
    plain, refined = _pair_of_models()
    x0, x1 = _frames()
    with torch.no_grad():
        a, aux_a = plain(x0, x1, return_aux=True)
        b, aux_b = refined(x0, x1, return_aux=True)
        fused = refined(x0, x1)  # the inference path
    assert torch.equal(aux_a["flow_t0"], aux_b["flow_t0"]) and torch.equal(aux_a["flow_t1"], aux_b["flow_t1"])
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)  # the blend weight goes through logit and sigmoid
    torch.testing.assert_close(fused, b, atol=1e-4, rtol=0)
    assert refined.model_args["motion"] == {"levels": [8, 4, 2], "widths": [64, 48, 32], "depth": 3}


def test_the_refiner_changes_the_flows_with_t_and_learns_from_the_motion_loss():
    from vfikit.losses import LossInputs, MotionTerm

    _, model = _pair_of_models(time_input=False)
    model.train()
    x0, x1 = _frames()
    torch.manual_seed(2)
    for block in model.motion.blocks:  # a refiner that has learned something
        torch.nn.init.normal_(block.out.weight, std=0.01)
    with torch.no_grad():
        f_a = model.motion(x0, x1, torch.zeros(1, 2, 64, 96), torch.zeros(1, 2, 64, 96), torch.zeros(1, 1, 64, 96),
                           torch.tensor([0.25]))[0]
        f_b = model.motion(x0, x1, torch.zeros(1, 2, 64, 96), torch.zeros(1, 2, 64, 96), torch.zeros(1, 1, 64, 96),
                           torch.tensor([0.75]))[0]
    assert (f_a - f_b).abs().max() > 1e-4  # t is an input: any t
    motion = torch.zeros(1, 6, 64, 96)
    motion[:, 0], motion[:, 1], motion[:, 2], motion[:, 3] = 3.0, -1.0, -3.0, 1.0
    motion[:, 4:] = 1.0
    pred, aux = model(x0, x1, return_aux=True)
    inputs = LossInputs(pred=pred, target=x0, frame0=x0, frame1=x1, aux=aux, motion=motion,
                        motion_known=torch.tensor([True]))
    loss = MotionTerm()(inputs)
    loss.backward()
    grads = [p.grad for p in model.motion.parameters()]
    assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0
    assert all(p.grad is None or float(p.grad.abs().sum()) == 0 for p in model.guide.parameters())


def test_a_model_with_a_refiner_saves_and_loads_through_its_file(tmp_path):
    _, model = _pair_of_models()
    with torch.no_grad():
        model.motion.blocks[0].out.bias.fill_(0.5)
    path = tmp_path / "m.vfikit"
    save_vfikit(model, path, {"note": "test"}, arch="guided_adacof_k5")
    loaded = create_model("guided_adacof_k5", weights=path)
    assert loaded.motion is not None and loaded.model_args["motion"] == model.model_args["motion"]
    assert torch.equal(loaded.motion.blocks[0].out.bias, model.motion.blocks[0].out.bias)


def test_bad_refiner_settings_are_refused_clearly():
    with pytest.raises(VfikitError, match="coarse to fine"):
        MotionRefiner(levels=(2, 4), widths=(8, 8))
    with pytest.raises(VfikitError, match="equally long"):
        MotionRefiner(levels=(8, 4), widths=(8,))
    with pytest.raises(VfikitError, match="do not fit"):
        create_model("guided_adacof_k5", motion={"layers": 3})
    with pytest.raises(VfikitError, match="divisible by 16"):
        MotionRefiner()(*(torch.zeros(1, c, 20, 20) for c in (3, 3, 2, 2, 1)), torch.tensor([0.5]))


def test_motion_loss_counts_visible_pixels_of_exact_motion_and_only_better_teacher_pixels():
    from vfikit.losses import LossInputs, MotionTerm

    x0, x1 = _frames()
    target = x0  # frame0 is the target itself: flow t->0 is zero
    flow0, flow1 = torch.zeros(1, 2, 64, 96), torch.zeros(1, 2, 64, 96)
    flow1[:, 0], flow1[:, 1] = -3.0, 3.0  # x1 = big[5:, 11:] = x0 moved: target(p) = x1(p + (-3, 3))
    aux = {"flow_t0": flow0, "flow_t1": flow1, "blend0": torch.full((1, 1, 64, 96), 0.5)}
    exact = torch.cat([flow0, flow1, torch.ones(1, 2, 64, 96)], 1)
    term = MotionTerm(blend=0.0)

    def value(motion, known, flows=None):
        a = dict(aux, **(flows or {}))
        return float(term(LossInputs(pred=target, target=target, frame0=x0, frame1=x1, aux=a, motion=motion,
                                     motion_known=torch.tensor([known]))))

    assert value(exact, True) < 0.01  # at the exact motion: only Charbonnier's epsilon
    wrong = {"flow_t1": torch.zeros(1, 2, 64, 96)}
    assert value(exact, True, wrong) > 3.0  # 3 px off in x and y
    hidden = exact.clone()
    hidden[:, 5] = 0  # frame1 sees nothing: its flow error does not count
    assert value(hidden, True, wrong) < 0.01
    # no exact motion: the DIS teacher counts where it warps better than the model's flow
    assert value(None, False) < 0.05  # the model's flows are right: the teacher is rarely better
    assert value(None, False, wrong) > 2.0
    with pytest.raises(VfikitError, match="aux flows"):
        term(LossInputs(pred=target, target=target, frame0=x0, frame1=x1, aux={}))


def test_the_matching_cost_is_lowest_at_the_symmetric_displacement_that_aligns_the_frames():
    from vfikit.models.motion import matching_cost

    warp0, _ = _frames()
    warp1 = torch.roll(warp0, shifts=(2, 2), dims=(2, 3))  # warp1(q) = warp0(q - 2): aligned at d = (dx, dy) = (-1, -1)
    cost = matching_cost(warp0, warp1, 2)
    assert cost.shape == (1, 25, 64, 96)
    inner = cost[0, :, 8:-8, 8:-8].mean((1, 2))
    assert int(inner.argmin()) == (-1 + 2) * 5 + (-1 + 2) and float(inner.min()) < 1e-6
    refiner = MotionRefiner(correlation=2)
    assert refiner.settings["correlation"] == 2 and refiner.blocks[0].body[0].in_channels == 18 + 25
    x0, x1 = _frames()
    zeros = torch.zeros(1, 2, 64, 96)
    out = refiner(x0, x1, zeros, zeros, torch.zeros(1, 1, 64, 96), torch.tensor([0.5]))
    assert torch.equal(out[0], zeros)  # still the guide at its zero start
    with pytest.raises(VfikitError, match="motion correlation"):
        MotionRefiner(correlation=-1)


def test_motion_fields_are_the_motion_the_whole_model_uses():
    """``motion_fields`` (the motion-only training stage) returns the refined flows and blend weight that the
    full forward puts in its aux, for a frame size the model pads."""
    _, model = _pair_of_models()
    for block in model.motion.blocks:  # a refiner that changes the guide's fields
        torch.nn.init.normal_(block.out.weight, std=0.01)
    x0, x1 = _frames(h=60, w=90)
    t = torch.tensor([0.5])  # guided_adacof_k5 interpolates the midpoint
    with torch.no_grad():
        _, aux = model(x0, x1, t=t, return_aux=True)
        fields = model.motion_fields(x0, x1, t)
        guide = model.guide.motion(x0, x1, t)
    assert set(fields) == {"flow_t0", "flow_t1", "blend0"}
    for key in fields:
        assert fields[key].shape[-2:] == (60, 90) and torch.equal(fields[key], aux[key])
    assert not torch.equal(fields["flow_t0"], guide["flow_t0"])  # the refiner's, not the guide's


# --- the flow refiner between the inputs (PairFlowRefiner) ---------------------------------------------------


def _shifted_pair(h: int = 64, w: int = 96, dx: int = 6, dy: int = -3):
    """frame1 = frame0 moved by (dx, dy): the exact flow 0->1 is (dx, dy), 1->0 is (-dx, -dy) (inside)."""
    x0, _ = _frames(h, w)
    x1 = torch.roll(x0, shifts=(dy, dx), dims=(2, 3))
    f01 = torch.tensor([float(dx), float(dy)]).view(1, 2, 1, 1).expand(1, 2, h, w).clone()
    return x0, x1, f01, -f01


def test_an_untrained_flow_refiner_returns_the_guides_flows_and_model_exactly():
    from vfikit.models.motion import PairFlowRefiner

    refiner = PairFlowRefiner()
    x0, x1, f01, f10 = _shifted_pair(h=60, w=90)  # not a multiple of 32: padded inside
    a, b = refiner(x0, x1, f01 + 1.5, f10)
    assert torch.equal(a, f01 + 1.5) and torch.equal(b, f10)
    plain = create_model("guided_adacof_k5").eval()
    refined = create_model("guided_adacof_k5", flow_refiner={}).eval()
    refined.warm_start(plain)
    with torch.no_grad():
        assert torch.equal(plain(x0, x1), refined(x0, x1))
    assert refined.model_args["flow_refiner"] == {"levels": [16, 8, 4], "widths": [64, 48, 32], "depth": 3,
                                                   "correlation": 3}


def test_the_guide_splats_given_flows_as_it_splats_its_own():
    """``motion_from_flows`` with DIS's own flows is ``motion``: the refined flows go through the same splatting."""
    guide = create_model("flow_dis")
    x0, x1 = _frames()
    t = torch.tensor([0.4])
    own = guide.motion(x0, x1, t)
    pair = guide.flows(x0, x1)
    given = guide.motion_from_flows(x0, x1, pair["flow01"], pair["flow10"], t)
    for key in own:
        assert torch.equal(own[key], given[key])


def test_the_flow_refiner_learns_from_the_pair_flow_loss():
    from vfikit.losses import LossInputs, PairFlowTerm
    from vfikit.models.motion import PairFlowRefiner

    torch.manual_seed(0)
    refiner = PairFlowRefiner(levels=(16, 8), widths=(16, 16), depth=1, correlation=2)
    x0, x1, f01, f10 = _shifted_pair()
    seen = torch.zeros(1, 1, 64, 96)
    seen[..., 8:-8, 8:-8] = 1  # away from the borders that the roll wrapped
    motion = torch.cat([torch.zeros(1, 6, 64, 96), f01, f10, seen, seen], 1)
    start = torch.zeros(1, 2, 64, 96)  # a guide that missed the motion
    term = PairFlowTerm()
    optimizer = torch.optim.Adam(refiner.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        a, b = refiner(x0, x1, start, start)
        loss = term(LossInputs(pred=None, target=x0, aux={"flow01": a, "flow10": b}, motion=motion,
                               motion_known=torch.tensor([True])))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_the_flow_refiner_on_learned_features_starts_at_the_guide_and_learns_its_features():
    from vfikit.losses import LossInputs, PairFlowTerm
    from vfikit.models.motion import PairFlowRefiner

    torch.manual_seed(0)
    refiner = PairFlowRefiner(levels=(16, 8, 4), widths=(16, 16, 16), depth=1, correlation=2, features=8)
    assert refiner.settings["features"] == 8
    x0, x1, f01, f10 = _shifted_pair(h=60, w=90)  # not a multiple of 32: padded inside, features too
    a, b = refiner(x0, x1, f01 - 2.0, f10)
    assert torch.equal(a, f01 - 2.0) and torch.equal(b, f10)  # zero start
    x0, x1, f01, f10 = _shifted_pair()
    seen = torch.zeros(1, 1, 64, 96)
    seen[..., 8:-8, 8:-8] = 1
    motion = torch.cat([torch.zeros(1, 6, 64, 96), f01, f10, seen, seen], 1)
    start = torch.zeros(1, 2, 64, 96)
    optimizer = torch.optim.Adam(refiner.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        a, b = refiner(x0, x1, start, start)
        loss = PairFlowTerm()(LossInputs(pred=None, target=x0, aux={"flow01": a, "flow10": b}, motion=motion,
                                         motion_known=torch.tensor([True])))
        optimizer.zero_grad()
        loss.backward()
        if len(losses) == 5:  # once the last layers left zero, the encoder learns through what the blocks see
            assert all(p.grad is not None and float(p.grad.abs().max()) > 0 for p in refiner.encoder.parameters())
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses
    with pytest.raises(VfikitError, match="powers of two"):
        PairFlowRefiner(levels=(12, 6), widths=(8, 8), features=8)


def test_the_correlation_of_features_peaks_at_the_displacement_that_aligns_them():
    from vfikit.models.motion import matching_cost

    torch.manual_seed(2)
    a = torch.randn(1, 16, 24, 24)
    b = torch.roll(a, shifts=(1, -2), dims=(2, 3))  # b(p + d) = a(p) for d = (dx, dy) = (-2, 1)
    cost = matching_cost(a, b, 2, symmetric=False, product=True)[..., 4:-4, 4:-4].mean((2, 3))
    assert int(cost.argmax()) == (1 + 2) * 5 + (-2 + 2)  # row-major from (-r, -r)


def test_a_guided_models_refined_flows_are_what_its_guide_splats_and_only_the_refiner_gets_gradients():
    model = create_model("guided_adacof_k5", flow_refiner={"levels": [16, 8], "widths": [16, 16], "depth": 1})
    torch.manual_seed(1)
    for block in model.flow_refiner.blocks:  # a refiner that has learned something
        torch.nn.init.normal_(block.out.weight, std=0.05)
    x0, x1, _, _ = _shifted_pair()
    fields = model.motion_fields(x0, x1)
    (fields["flow01"].abs().mean() + fields["flow10"].abs().mean()).backward()
    assert all(p.grad is None for p in model.unet.parameters())  # the motion-only stage never reaches the network
    assert any(p.grad is not None and float(p.grad.abs().max()) > 0 for p in model.flow_refiner.parameters())
    dis = model.guide.flows(x0, x1)
    assert not torch.equal(fields["flow01"], dis["flow01"])
    splatted = model.guide.motion_from_flows(x0, x1, fields["flow01"].detach(), fields["flow10"].detach())
    assert torch.equal(fields["flow_t0"], splatted["flow_t0"]) and torch.equal(fields["flow_t1"], splatted["flow_t1"])


def test_the_pair_flow_loss_counts_seen_pixels_of_known_samples_only():
    from vfikit.losses import LossInputs, PairFlowTerm

    x0, _, f01, f10 = _shifted_pair()
    seen = torch.ones(1, 1, 64, 96)
    exact = torch.cat([torch.zeros(1, 6, 64, 96), f01, f10, seen, seen], 1)
    term = PairFlowTerm()

    def value(motion, known, flow01):
        aux = {"flow01": flow01, "flow10": f10}
        return float(term(LossInputs(pred=None, target=x0, aux=aux, motion=motion, motion_known=torch.tensor([known]))))

    assert value(exact, True, f01) < 0.01
    assert value(exact, True, f01 + 4.0) > 3.0  # 4 px off in x and y: about 4 per component, over half the flows
    hidden = exact.clone()
    hidden[:, 10] = 0  # no pixel of frame0 is seen in frame1: its flow's error does not count
    assert value(hidden, True, f01 + 4.0) < 0.01
    assert value(exact, False, f01 + 4.0) == 0.0  # no exact motion: nothing to learn from
    with pytest.raises(VfikitError, match="flow_refiner"):
        term(LossInputs(pred=None, target=x0, aux={}))


def test_the_flow_refiners_selection_keeps_per_pixel_the_flow_that_matches_the_other_frame():
    from vfikit.models.motion import PairFlowRefiner

    x0, x1, f01, _ = _shifted_pair()
    wrong = f01 + 3.0
    inner = (slice(None), slice(None), slice(8, -8), slice(8, -8))  # away from the wrapped borders
    # the refined flow right and the guide wrong: the refined one is kept; the other way round: the guide's
    assert torch.equal(PairFlowRefiner.choose(x0, x1, wrong, f01, 7)[inner], f01[inner])
    assert torch.equal(PairFlowRefiner.choose(x0, x1, f01, wrong, 7)[inner], f01[inner])
    mixed = wrong.clone()
    mixed[..., :, 48:] = f01[..., :, 48:]  # the refined flow right on the right half only
    chosen = PairFlowRefiner.choose(x0, x1, f01, mixed, 3)
    assert torch.equal(chosen[inner], f01[inner])  # DIS's kept where the refiner was wrong
    refiner = PairFlowRefiner(select=7)
    assert refiner.settings["select"] == 7
    a, b = refiner(x0, x1, f01, -f01)  # untrained: the guide's flows, whatever the selection
    assert torch.equal(a, f01) and torch.equal(b, -f01)
    torch.manual_seed(3)
    for block in refiner.blocks:  # a refiner that moves the flows (away from the right ones)
        torch.nn.init.normal_(block.out.weight, std=0.05)
    refiner.train()
    trained, _ = refiner(x0, x1, f01, -f01)
    assert not torch.equal(trained[inner], f01[inner])  # training: the refined flow everywhere, gradients too
    refiner.eval()
    kept, _ = refiner(x0, x1, f01, -f01)
    assert torch.equal(kept, PairFlowRefiner.choose(x0, x1, f01, trained, 7))  # eval: the selection,
    assert torch.equal(kept[inner], f01[inner])  # which keeps the exact guide where the refiner moved away
    with pytest.raises(VfikitError, match="odd window"):
        PairFlowRefiner(select=4)
