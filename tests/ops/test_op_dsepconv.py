"""dsepconv: loop oracle, conventions, identities, goldens."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.conftest import shared_path
from tests.ops.opcases import make_case
from tests.ops.oracles import dsepconv_loop
from vfikit.ops import adacof, dsepconv, sepconv


@pytest.mark.parametrize("convention", ["official", "clean"])
@pytest.mark.parametrize("size", [1, 3, 4, 5])
@pytest.mark.parametrize("backend", ["reference", "torch", "numba"])
def test_matches_loop_oracle(convention, size, backend, gen):
    case = make_case("dsepconv", convention, gen=gen, h=5, w=7, size=size)
    oy = case.args["offset_y"].clone()
    oy.view(-1)[::6] = 9.5  # off the bottom: the official rule doubles the border pixel
    oy.view(-1)[1::6] = -7.25
    out = case.call(backend, offset_y=oy)
    a = {k: v.numpy() for k, v in case.args.items()}
    want = dsepconv_loop(a["input"], a["vertical"], a["horizontal"], oy.numpy(), a["offset_x"], a["mask"],
                         convention)
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-12, atol=1e-12)


def _unit(n: int, h: int, w: int):
    ones = torch.ones(1, n, h, w, dtype=torch.float64)
    zeros = torch.zeros(1, n * n, h, w, dtype=torch.float64)
    return ones, ones.clone(), zeros, zeros.clone(), torch.ones_like(zeros)


@pytest.mark.parametrize("backend", ["reference", "numba"])
def test_clean_with_zero_offsets_and_unit_masks_equals_sepconv(backend, gen):
    x = torch.rand(2, 3, 9, 10, generator=gen, dtype=torch.float64)
    kv = torch.randn(2, 5, 9, 10, generator=gen, dtype=torch.float64)
    kh = torch.randn(2, 5, 9, 10, generator=gen, dtype=torch.float64)
    zeros = torch.zeros(2, 25, 9, 10, dtype=torch.float64)
    out = dsepconv(x, kv, kh, zeros, zeros, torch.ones_like(zeros), convention="clean", backend=backend)
    torch.testing.assert_close(out, sepconv(x, kv, kh, convention="clean", backend=backend))


def test_clean_n1_is_masked_bilinear_backward_warping(gen):
    """n = 1: bidirectional-flow warping with an occlusion weight (the DSepConv paper's special case)."""
    n, h, w = 2, 8, 9
    x = torch.rand(n, 3, h, w, generator=gen, dtype=torch.float64)
    flow = torch.randn(n, 2, h, w, generator=gen, dtype=torch.float64) * 2
    kv = torch.rand(n, 1, h, w, generator=gen, dtype=torch.float64)
    kh = torch.rand(n, 1, h, w, generator=gen, dtype=torch.float64)
    m = torch.rand(n, 1, h, w, generator=gen, dtype=torch.float64)
    out = dsepconv(x, kv, kh, flow[:, 1:], flow[:, :1], m, convention="clean")
    warped = adacof(x, torch.ones_like(m), flow[:, 1:], flow[:, :1], convention="clean")
    gy, gx = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    grid = torch.stack([2 * (gx + flow[:, 0]) / (w - 1) - 1, 2 * (gy + flow[:, 1]) / (h - 1) - 1], dim=-1)
    torch.testing.assert_close(warped, F.grid_sample(x, grid, padding_mode="border", align_corners=True))
    torch.testing.assert_close(out, warped * kv * kh * m)


def test_offset_y_moves_rows_and_offset_x_columns(gen):
    x = torch.rand(1, 1, 7, 7, generator=gen, dtype=torch.float64)
    kv, kh, oy, ox, m = _unit(1, 7, 7)
    down = dsepconv(x, kv, kh, oy + 1, ox, m, convention="clean")
    right = dsepconv(x, kv, kh, oy, ox + 1, m, convention="clean")
    torch.testing.assert_close(down[:, :, :-1], x[:, :, 1:])
    torch.testing.assert_close(right[..., :-1], x[..., 1:])


def test_mask_channel_order_k_equals_n_i_plus_j(gen):
    """A mask that is 1 only on channel 4 selects tap (i=0, j=4) (spec section b)."""
    n, h, w = 5, 4, 6
    x = torch.rand(1, 1, h + 4, w + 4, generator=gen, dtype=torch.float64)
    kv, kh, oy, ox, m = _unit(n, h, w)
    m = torch.zeros_like(m)
    m[:, 4] = 1.0
    out = dsepconv(x, kv, kh, oy, ox, m, convention="official")
    # official zero-offset grid: tap (i, j) reads padded (y + i - 1, x + j - 1), clamped, border doubled
    i, j = 0, 4
    rows = torch.arange(h) + i - 1
    cols = torch.arange(w) + j - 1
    doubled = (1.0 + (rows < 0).double())[:, None] * (1.0 + (cols > w + 3).double())[None, :]
    want = x[0, 0][rows.clamp(0, h + 3)][:, cols.clamp(0, w + 3)] * doubled
    torch.testing.assert_close(out[0, 0], want)


def test_official_centre_tap_reads_one_pixel_up_left_after_the_network_pad(gen):
    """n = 5 with the network's 2-px replicate pad: zero offsets put the centre tap on (y-1, x-1)."""
    n, h, w = 5, 6, 7
    img = torch.rand(1, 1, h, w, generator=gen, dtype=torch.float64)
    padded = F.pad(img, (2, 2, 2, 2), mode="replicate")
    kv, kh, oy, ox, m = _unit(n, h, w)
    m = torch.zeros_like(m)
    m[:, n * 2 + 2] = 1.0
    out = dsepconv(padded, kv, kh, oy, ox, m, convention="official")
    torch.testing.assert_close(out[..., 1:, 1:], img[..., :-1, :-1])


def test_official_border_rule_doubles_per_axis():
    """Constant-1 image: both axes outside -> 4, one axis -> 2, inside -> 1 (spec, measured)."""
    x = torch.ones(1, 1, 3, 3, dtype=torch.float64)
    kv, kh, oy, ox, m = _unit(1, 3, 3)
    # n = 1 reads position offset + y + 1; at output pixel (0, 0) that is offset + 1.
    # An exact hit on the last index (offset 1.0 -> position 2) also counts as outside.
    cases = [(-5.0, -5.0, 4.0), (-5.0, -0.75, 2.0), (-0.75, -0.75, 1.0), (1.0, 1.0, 4.0), (1.0, 0.5, 2.0)]
    for dy, dx, want in cases:
        out = dsepconv(x, kv, kh, oy + dy, ox + dx, m, convention="official")
        assert out[0, 0, 0, 0].item() == pytest.approx(want), (dy, dx)


@pytest.mark.parametrize("backend", ["reference", "torch", "numba"])
def test_official_golden(backend):
    d = np.load(shared_path("reference", "golden", "ops", "dsepconv_n5.npz"))
    names = ("vertical", "horizontal", "offset_x", "offset_y", "mask")
    t = {k: torch.from_numpy(d[k]).requires_grad_() for k in names}
    # official argument order: offset_x (4th) moves rows, offset_y (5th) moves columns
    out = dsepconv(torch.from_numpy(d["input"]), t["vertical"], t["horizontal"], t["offset_x"], t["offset_y"],
                   t["mask"], convention="official", backend=backend)
    np.testing.assert_allclose(out.detach().numpy(), d["output"], rtol=1e-5, atol=1e-5)
    (out * torch.from_numpy(d["grad_output"])).sum().backward()
    for k in names:
        np.testing.assert_allclose(t[k].grad.numpy(), d[f"grad_{k}"], rtol=1e-5, atol=1e-5, err_msg=k)
