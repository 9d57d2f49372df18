"""Each loss against an independent (loop / numpy / plain functional) computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vfikit.data.mixing import Batch
from vfikit.engine.train import forward_for_loss
from vfikit.errors import VfikitError
from vfikit.hub import create_model
from vfikit.losses import (
    LossInputs,
    VGG16Features,
    build_loss,
    charbonnier,
    gradient_difference,
    occlusion_smoothness,
    offset_smoothness,
)

pytestmark = pytest.mark.usefixtures("tiny_models")  # the tiny models of tests/_train_models.py


def _rho(x: float) -> float:
    return math.sqrt(x * x + 1e-6)


def test_charbonnier_matches_numpy():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(2, 3, 5, 4, generator=g), torch.rand(2, 3, 5, 4, generator=g)
    expected = np.mean(np.sqrt((a.numpy() - b.numpy()) ** 2 + 1e-6))
    assert charbonnier(a, b).item() == pytest.approx(expected, rel=1e-6)
    # epsilon is the papers' 1e-6 under the root: a zero difference costs 1e-3
    assert charbonnier(a, a).item() == pytest.approx(1e-3, rel=1e-6)


def test_gradient_difference_matches_loops():
    g = torch.Generator().manual_seed(1)
    pred, gt = torch.rand(1, 2, 4, 5, generator=g, dtype=torch.float64), torch.rand(1, 2, 4, 5, generator=g,
                                                                                     dtype=torch.float64)
    p, q = pred[0].numpy(), gt[0].numpy()
    c, h, w = p.shape
    total = 0.0
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):  # up, down, left, right
        acc = 0.0
        for ch in range(c):
            for y in range(h):
                for x in range(w):
                    yy, xx = y + dy, x + dx
                    if 0 <= yy < h and 0 <= xx < w:
                        gp, gq = abs(p[ch, y, x] - p[ch, yy, xx]), abs(q[ch, y, x] - q[ch, yy, xx])
                    else:
                        gp = gq = 0.0
                    acc += _rho(gp - gq)
        total += acc / (c * h * w)
    assert gradient_difference(pred, gt).item() == pytest.approx(total, rel=1e-12)
    # identical images have no gradient difference beyond the epsilon floor (4 directions x 1e-3)
    assert gradient_difference(gt, gt).item() == pytest.approx(4e-3, rel=1e-9)


def _aux(seed: int, taps: int = 9, h: int = 4, w: int = 5):
    g = torch.Generator().manual_seed(seed)
    kernels = []
    for _ in range(2):
        weight = torch.softmax(torch.randn(2, taps, h, w, generator=g, dtype=torch.float64), 1)
        kernels.append((weight, 3 * torch.randn(2, taps, h, w, generator=g, dtype=torch.float64),
                        3 * torch.randn(2, taps, h, w, generator=g, dtype=torch.float64)))
    occ = torch.rand(2, 1, h, w, generator=g, dtype=torch.float64)
    return {"kernels": kernels, "occlusion": occ}


def _charb_mean(values: list[float]) -> float:
    return sum(_rho(v) for v in values) / len(values)


def test_g_spatial_matches_spec_formula_by_loops():
    aux = _aux(2)
    expected = 0.0
    for weight, oy, ox in aux["kernels"]:
        for off in (oy, ox):  # (W1, Alpha1), (W1, Beta1), (W2, Alpha2), (W2, Beta2)
            wn, on = weight.numpy(), off.numpy()
            n, taps, h, w = wn.shape
            m = np.zeros((n, h, w))
            for b in range(n):
                for y in range(h):
                    for x in range(w):
                        m[b, y, x] = sum(wn[b, k, y, x] * on[b, k, y, x] for k in range(taps)) / taps
            horiz = [m[b, y, x] - m[b, y, x + 1] for b in range(n) for y in range(h) for x in range(w - 1)]
            vert = [m[b, y, x] - m[b, y + 1, x] for b in range(n) for y in range(h - 1) for x in range(w)]
            expected += _charb_mean(horiz) + _charb_mean(vert)
    assert offset_smoothness(aux["kernels"]).item() == pytest.approx(expected, rel=1e-12)
    term = build_loss([{"name": "g_spatial", "weight": 1.0}])
    assert term.needs_aux and not term.needs_flip
    total, _ = term(LossInputs(pred=torch.zeros(1), target=torch.zeros(1), aux=aux))
    assert total.item() == pytest.approx(expected, rel=1e-6)


def test_g_occlusion_matches_loops():
    occ = _aux(3)["occlusion"]
    v = occ.numpy()[:, 0]
    n, h, w = v.shape
    horiz = [v[b, y, x] - v[b, y, x + 1] for b in range(n) for y in range(h) for x in range(w - 1)]
    vert = [v[b, y, x] - v[b, y + 1, x] for b in range(n) for y in range(h - 1) for x in range(w)]
    assert occlusion_smoothness(occ).item() == pytest.approx(_charb_mean(horiz) + _charb_mean(vert), rel=1e-12)


def test_aux_losses_refuse_wrong_aux():
    dsep_aux = {"kernels": [tuple(torch.zeros(1, 5, 2, 2) for _ in range(5))] * 2}
    with pytest.raises(VfikitError, match="DSepConv"):
        offset_smoothness(dsep_aux["kernels"])
    loss = build_loss([{"name": "g_occlusion", "weight": 1.0}])
    with pytest.raises(VfikitError, match="occlusion"):
        loss(LossInputs(pred=torch.zeros(1), target=torch.zeros(1), aux={"kernels": []}))


def test_temporal_flip_runs_the_model_on_swapped_inputs_at_one_minus_t():
    model = create_model("test_tiny_arbitrary", channels=4)
    g = torch.Generator().manual_seed(4)
    batch = Batch(torch.rand(2, 3, 8, 8, generator=g), torch.rand(2, 3, 8, 8, generator=g),
                  torch.rand(2, 3, 8, 8, generator=g), torch.tensor([0.25, 0.6]), ["a", "b"])
    loss = build_loss([{"name": "charbonnier", "weight": 1.0}, {"name": "temporal_flip", "weight": 0.5}])
    assert loss.needs_flip and not loss.needs_aux
    with torch.no_grad():
        pred, no_aux, flipped = forward_for_loss(model, batch, need_aux=False, need_flip=True, pass_t=True)
        direct = model(batch.frame0, batch.frame1, t=batch.t)
        swapped = model(batch.frame1, batch.frame0, t=1 - batch.t)
    assert no_aux is None
    torch.testing.assert_close(pred, direct)
    torch.testing.assert_close(flipped, swapped)
    total, _ = loss(LossInputs(pred, batch.target, pred_flipped=flipped))
    expected = charbonnier(direct, batch.target) + 0.5 * charbonnier(swapped, batch.target)
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    consistency = build_loss([{"name": "temporal_flip", "weight": 1.0, "against": "prediction"}])
    value, _ = consistency(LossInputs(pred, batch.target, pred_flipped=flipped))
    assert value.item() == pytest.approx(charbonnier(swapped, direct).item(), rel=1e-6)


def test_aux_is_sliced_to_the_unflipped_half():
    model = create_model("test_tiny_adacof", channels=4)
    g = torch.Generator().manual_seed(5)
    batch = Batch(torch.rand(2, 3, 8, 8, generator=g), torch.rand(2, 3, 8, 8, generator=g),
                  torch.rand(2, 3, 8, 8, generator=g), torch.full((2,), 0.5), ["a", "b"])
    with torch.no_grad():
        _, aux, _ = forward_for_loss(model, batch, need_aux=True, need_flip=True, pass_t=False)
        _, direct_aux = model(batch.frame0, batch.frame1, return_aux=True)
    torch.testing.assert_close(aux["occlusion"], direct_aux["occlusion"])
    torch.testing.assert_close(aux["kernels"][1][2], direct_aux["kernels"][1][2])


# ----------------------------------------------------------------------------------------------- VGG

_PLAN = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512]


def _independent_vgg(state: dict, x: torch.Tensor) -> torch.Tensor:
    """conv4_3 before ReLU, written from the torchvision layout (features indices)."""
    index, convs = 0, 0
    for item in _PLAN:
        if item == "M":
            x = F.max_pool2d(x, 2, 2)
            index += 1
            continue
        x = F.conv2d(x, state[f"features.{index}.weight"], state[f"features.{index}.bias"], padding=1)
        convs += 1
        if convs == 10:
            return x
        x = F.relu(x)
        index += 2
    raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory):
    torch.manual_seed(0)
    net = VGG16Features()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)  # a whole torchvision state dict has these too
    path = tmp_path_factory.mktemp("vgg") / "vgg16.pth"
    torch.save(state, path)
    return path, state


def test_vgg_term_matches_independent_features(vgg_file):
    path, state = vgg_file
    loss = build_loss([{"name": "vgg", "weight": 1.0, "weights": str(path)}])
    g = torch.Generator().manual_seed(6)
    pred, target = torch.rand(1, 3, 16, 16, generator=g), torch.rand(1, 3, 16, 16, generator=g)
    pred.requires_grad_(True)
    total, _ = loss(LossInputs(pred, target))
    with torch.no_grad():
        expected = F.mse_loss(_independent_vgg(state, pred), _independent_vgg(state, target))
    assert total.item() == pytest.approx(expected.item(), rel=1e-4)
    total.backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in loss.terms[0].net.parameters())


def test_vgg_errors(tmp_path, vgg_file):
    with pytest.raises(VfikitError, match="needs 'weights'"):
        build_loss([{"name": "vgg", "weight": 1.0}])
    missing = tmp_path / "nope.pth"
    with pytest.raises(VfikitError, match=str(missing)):
        build_loss([{"name": "vgg", "weight": 1.0, "weights": str(missing)}])
    _, state = vgg_file
    partial = {k: v for k, v in state.items() if k != "features.21.weight"}
    torch.save(partial, tmp_path / "partial.pth")
    with pytest.raises(VfikitError, match=r"features\.21\.weight"):
        build_loss([{"name": "vgg", "weight": 1.0, "weights": str(tmp_path / "partial.pth")}])


def test_build_loss_errors():
    with pytest.raises(VfikitError, match="unknown loss 'charbonier'"):
        build_loss([{"name": "charbonier", "weight": 1.0}])
    with pytest.raises(VfikitError, match="unknown parameter 'epsilon'"):
        build_loss([{"name": "charbonnier", "weight": 1.0, "epsilon": 1e-3}])
    with pytest.raises(VfikitError, match="unknown parameter"):
        build_loss([{"name": "l1", "weight": 1.0, "foo": 1}])
    with pytest.raises(VfikitError, match="empty"):
        build_loss([])


def test_composite_weights_terms():
    g = torch.Generator().manual_seed(7)
    pred, target = torch.rand(1, 3, 6, 6, generator=g), torch.rand(1, 3, 6, 6, generator=g)
    loss = build_loss([{"name": "charbonnier", "weight": 2.0}, {"name": "l1", "weight": 0.5},
                       {"name": "gradient_difference", "weight": 0.1}])
    total, values = loss(LossInputs(pred, target))
    expected = 2 * charbonnier(pred, target) + 0.5 * (pred - target).abs().mean() + 0.1 * gradient_difference(pred,
                                                                                                           target)
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    assert set(values) == {"charbonnier", "l1", "gradient_difference"}


def _textured(h: int = 64, w: int = 80, seed: int = 3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, h // 4, w // 4, generator=g)
    return torch.nn.functional.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)


def test_kernel_displacement_follows_the_clean_tap_grid():
    from vfikit.losses import kernel_displacement

    f, d = 3, 2
    weight = torch.zeros(1, f * f, 2, 2)
    weight[:, f - 1] = 1.0  # tap t = F*0 + (F-1): top row, right column
    oy, ox = torch.full_like(weight, 0.25), torch.full_like(weight, -0.5)
    disp = kernel_displacement(weight, oy, ox, dilation=d)
    assert torch.allclose(disp[:, 1], torch.full((1, 2, 2), -(f - 1) / 2 * d + 0.25))  # y: up
    assert torch.allclose(disp[:, 0], torch.full((1, 2, 2), (f - 1) / 2 * d - 0.5))  # x: right
    g = torch.Generator().manual_seed(0)
    w = torch.rand(2, 25, 3, 4, generator=g).softmax(1)
    oy, ox = torch.randn(2, 25, 3, 4, generator=g), torch.randn(2, 25, 3, 4, generator=g)
    loop = torch.zeros(2, 2, 3, 4)
    for t in range(25):
        k, l = divmod(t, 5)
        loop[:, 1] += w[:, t] * (oy[:, t] + (k - 2))
        loop[:, 0] += w[:, t] * (ox[:, t] + (l - 2))
    assert torch.allclose(kernel_displacement(w, oy, ox), loop, atol=1e-6)
    with pytest.raises(VfikitError, match="F\\*F"):
        kernel_displacement(torch.rand(1, 24, 2, 2), torch.rand(1, 24, 2, 2), torch.rand(1, 24, 2, 2))


def test_flow_hint_rewards_kernels_that_point_at_the_motion():
    pytest.importorskip("cv2")
    from vfikit.losses import FlowHintTerm, LossInputs, teacher_flow

    tex = _textured(64, 96)
    mid = tex[..., 8:-8]
    frame0, frame1 = tex[..., 5:-11], tex[..., 11:-5]  # mid(p) = frame0(p + 3 px in x) = frame1(p - 3 px)
    flow = teacher_flow(mid, frame0)
    inner = flow[..., 8:-8, 8:-8]
    assert abs(inner[:, 0].mean().item() - 3.0) < 0.3 and inner[:, 1].abs().mean() < 0.3  # x = +3, y = 0
    weight = torch.zeros(1, 25, 64, 80)
    weight[:, 12] = 1.0  # centre tap only

    def loss(shift: float) -> float:
        kernels = [(weight, torch.zeros_like(weight), torch.full_like(weight, shift)),
                   (weight, torch.zeros_like(weight), torch.full_like(weight, -shift))]
        inputs = LossInputs(pred=mid, target=mid, frame0=frame0, frame1=frame1, aux={"kernels": kernels})
        return FlowHintTerm()(inputs).item()

    assert loss(3.0) < 0.5 and loss(0.0) > 2.5  # 3 px off in x: 1.5 per frame (mean over dy, dx)


def test_backward_warp_samples_where_the_flow_points():
    from vfikit.ops import backward_warp

    image = torch.rand(2, 3, 20, 30)
    flow = torch.zeros(2, 2, 20, 30)
    flow[:, 0], flow[:, 1] = -3.0, 2.0  # (x, y): out(y, x) = image(y + 2, x - 3)
    out = backward_warp(image, flow)
    assert torch.allclose(out[..., :-2, 3:], image[..., 2:, :-3], atol=1e-5)
    half = torch.zeros_like(flow)
    half[:, 0] = 0.5
    assert torch.allclose(backward_warp(image, half)[..., :-1],
                          0.5 * (image[..., :-1] + image[..., 1:]), atol=1e-5)


def test_flow_hint_teacher_better_mask_counts_only_where_the_teacher_warps_better():
    pytest.importorskip("cv2")
    from vfikit.losses import FlowHintTerm, LossInputs

    tex = _textured(64, 96)
    mid = tex[..., 8:-8]
    frame0, frame1 = tex[..., 5:-11], tex[..., 11:-5]  # mid(p) = frame0(p + 3 px in x) = frame1(p - 3 px)
    weight = torch.zeros(1, 25, 64, 80)
    weight[:, 12] = 1.0

    def loss(shift: float, **kw) -> float:
        kernels = [(weight, torch.zeros_like(weight), torch.full_like(weight, shift)),
                   (weight, torch.zeros_like(weight), torch.full_like(weight, -shift))]
        inputs = LossInputs(pred=mid, target=mid, frame0=frame0, frame1=frame1, aux={"kernels": kernels})
        return FlowHintTerm(init_scale=2, **kw)(inputs).item()

    # kernels at the true motion: the teacher warps better almost nowhere (a few border pixels), so the
    # masked term nearly vanishes, while the unmasked one still pulls towards the teacher's small errors
    at_motion, unmasked = loss(3.0, mask="teacher_better"), loss(3.0)
    assert at_motion < 0.005 and unmasked > 5 * at_motion
    # kernels that ignore the motion (or miss it by 1 px): the teacher is better nearly everywhere
    assert loss(0.0, mask="teacher_better") > 2.5 and loss(2.0, mask="teacher_better") > 0.8
    with pytest.raises(VfikitError, match="mask"):
        FlowHintTerm(mask="always")
    with pytest.raises(VfikitError, match="init_scale"):
        FlowHintTerm(init_scale=0)
