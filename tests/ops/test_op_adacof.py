"""adacof: loop oracle, conventions, goldens (more parity/gradient/error tests in test_ops_common.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.conftest import shared_path
from tests.ops.opcases import make_case
from tests.ops.oracles import adacof_loop
from vfikit.ops import adacof


@pytest.mark.parametrize("convention", ["official", "clean"])
@pytest.mark.parametrize(("size", "dilation"), [(1, 1), (3, 1), (3, 2), (4, 1), (5, 1)])
@pytest.mark.parametrize("backend", ["reference", "torch", "numba"])
def test_matches_loop_oracle(convention, size, dilation, backend, gen):
    case = make_case("adacof", convention, gen=gen, h=5, w=7, size=size, dilation=dilation)
    # mix in exact negative integers and far-away samples, where the official truncation rule matters
    oy = case.args["offset_y"].clone()
    oy.view(-1)[::5] = -2.0
    oy.view(-1)[1::7] = 15.5
    out = case.call(backend, offset_y=oy)
    a = {k: v.numpy() for k, v in case.args.items()}
    want = adacof_loop(a["input"], a["weight"], oy.numpy(), a["offset_x"], dilation, convention)
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-12, atol=1e-12)


def _one_tap(f: int, t: int, h: int, w: int, oy: float = 0.0, ox: float = 0.0):
    weight = torch.zeros(1, f * f, h, w, dtype=torch.float64)
    weight[:, t] = 1.0
    return weight, torch.full_like(weight, oy), torch.full_like(weight, ox)


def test_clean_positive_offset_x_reads_the_pixel_to_the_right(gen):
    x = torch.rand(1, 2, 6, 8, generator=gen, dtype=torch.float64)
    weight, oy, ox = _one_tap(1, 0, 6, 8, ox=1.0)
    out = adacof(x, weight, oy, ox, convention="clean")
    torch.testing.assert_close(out[..., :-1], x[..., 1:])  # content moves left
    torch.testing.assert_close(out[..., -1], x[..., -1])  # clamped at the border


def test_clean_positive_offset_y_moves_rows(gen):
    x = torch.rand(1, 2, 6, 8, generator=gen, dtype=torch.float64)
    weight, oy, ox = _one_tap(1, 0, 6, 8, oy=2.0)
    out = adacof(x, weight, oy, ox, convention="clean")
    torch.testing.assert_close(out[:, :, :-2], x[:, :, 2:])
    torch.testing.assert_close(out[:, :, -1], x[:, :, -1])


@pytest.mark.parametrize("convention", ["official", "clean"])
def test_tap_channel_order_is_row_major(convention, gen):
    f, d, h, w = 3, 2, 4, 5
    pad = (f - 1) * d if convention == "official" else 0
    x = torch.rand(1, 1, h + pad + 6, w + pad + 6, generator=gen, dtype=torch.float64)[..., :h + pad, :w + pad]
    k, l = 0, 2  # tap t = F*k + l: top row, right column
    weight, oy, ox = _one_tap(f, f * k + l, h, w)
    out = adacof(x.contiguous(), weight, oy, ox, d, convention=convention)
    if convention == "official":
        want = x[:, :, k * d:k * d + h, l * d:l * d + w]
    else:  # centred: k=0 is one dilated step up, l=2 one step right, clamped at the border
        rows = (torch.arange(h) + (k - 1) * d).clamp(0, h - 1)
        cols = (torch.arange(w) + (l - 1) * d).clamp(0, w - 1)
        want = x[:, :, rows][:, :, :, cols]
    torch.testing.assert_close(out, want)


@pytest.mark.parametrize(("beta", "want"), [(-0.5, [-4, 10, 4]), (0.5, [4, 6, 4]), (-1.5, [0, -4, 10]),
                                            (5.0, [4, 4, 4]), (-0.25, [-2, 9, 4])])
def test_official_truncation_vectors_from_the_spec(beta, want):
    x = torch.tensor([0.0, 8.0, 4.0], dtype=torch.float64).view(1, 1, 1, 3)
    weight, oy, ox = _one_tap(1, 0, 1, 3, ox=beta)
    out = adacof(x, weight, oy, ox, convention="official")
    assert out.view(-1).tolist() == pytest.approx(want)


def test_clean_extrapolation_never_happens_for_negative_offsets():
    """Where the official rule extrapolates (trunc toward zero), the clean rule interpolates."""
    x = torch.tensor([0.0, 8.0, 4.0], dtype=torch.float64).view(1, 1, 1, 3)
    weight, oy, ox = _one_tap(1, 0, 1, 3, ox=-0.5)
    out = adacof(x, weight, oy, ox, convention="clean")
    assert out.view(-1).tolist() == pytest.approx([0.0, 4.0, 6.0])


def test_clean_single_tap_equals_bilinear_backward_warp(gen):
    """F = 1 is optical-flow backward warping (grid_sample, border padding, align_corners=True)."""
    n, c, h, w = 2, 3, 9, 11
    x = torch.rand(n, c, h, w, generator=gen, dtype=torch.float64)
    flow = torch.randn(n, 2, h, w, generator=gen, dtype=torch.float64) * 3
    out = adacof(x, torch.ones(n, 1, h, w, dtype=torch.float64), flow[:, 1:], flow[:, :1], convention="clean")
    gy, gx = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    px, py = gx + flow[:, 0], gy + flow[:, 1]
    grid = torch.stack([2 * px / (w - 1) - 1, 2 * py / (h - 1) - 1], dim=-1)
    want = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)
    torch.testing.assert_close(out, want)


def test_border_reads_replicate_the_edge_in_both_conventions(gen):
    x = torch.rand(1, 1, 4, 4, generator=gen, dtype=torch.float64)
    weight, oy, ox = _one_tap(1, 0, 4, 4, oy=-50.0, ox=80.0)
    for convention in ("official", "clean"):
        out = adacof(x, weight, oy, ox, convention=convention)
        torch.testing.assert_close(out, x[:, :, :1, -1:].expand(1, 1, 4, 4))


@pytest.mark.parametrize("name", ["adacof_F5_D1", "adacof_F3_D2", "adacof_F3_D2_C5"])
@pytest.mark.parametrize("backend", ["reference", "torch", "numba"])
def test_official_goldens(name, backend):
    d = np.load(shared_path("reference", "golden", "ops", f"{name}.npz"))
    x = torch.from_numpy(d["input"])
    w, a, b = (torch.from_numpy(d[k]).requires_grad_() for k in ("weight", "alpha", "beta"))
    dil = int(d["dilation"])
    out = adacof(x, w, a, b, dil, convention="official", backend=backend)
    np.testing.assert_allclose(out.detach().numpy(), d["output"], rtol=1e-5, atol=1e-5)
    # The official backward sums weight/offset gradients over channels 0-2 only and gives the image none;
    # emulate it: channels >= 3 go through detached weights and offsets.
    live = adacof(x[:, :3], w, a, b, dil, convention="official", backend=backend)
    rest = adacof(x[:, 3:], w.detach(), a.detach(), b.detach(), dil, convention="official", backend=backend)
    g = torch.from_numpy(d["grad_output"])
    (torch.cat([live, rest], 1) * g).sum().backward()
    for tensor, key in ((w, "grad_weight"), (a, "grad_alpha"), (b, "grad_beta")):
        np.testing.assert_allclose(tensor.grad.numpy(), d[key], rtol=1e-5, atol=1e-5)
