"""Forward splatting: the compiled backend agrees with its numpy twin; flow_dis gives the same fields."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.helpers import texture
from vfikit.errors import VfikitError
from vfikit.hub import create_model
from vfikit.ops.splat import consistency, splat, splat_motion


def test_splat_backends_agree_including_points_outside_the_grid():
    rng = np.random.default_rng(0)
    n, h, w = 500, 13, 17
    values = rng.normal(size=(n, 3)).astype(np.float32)
    px = rng.uniform(-3, w + 2, n).astype(np.float32)  # some points land partly or wholly outside
    py = rng.uniform(-3, h + 2, n).astype(np.float32)
    weight = rng.uniform(0, 1, n).astype(np.float32)
    ref, fast = splat(values, px, py, weight, h, w, "numpy"), splat(values, px, py, weight, h, w, "numba")
    for a, b in zip(ref, fast):  # the twin forms the bilinear weights in float32, the loop in float64
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    inside = (px >= 0) & (px <= w - 1) & (py >= 0) & (py <= h - 1)
    outside = (px <= -1) | (px >= w) | (py <= -1) | (py >= h)
    # points wholly inside hand out all their bilinear weight, points wholly outside none
    assert inside.sum() - 1e-4 <= fast[2].sum() <= n - outside.sum() + 1e-4
    with pytest.raises(VfikitError, match="backend"):
        splat(values, px, py, weight, h, w, "cuda")


def test_splat_moves_a_point_to_its_bilinear_neighbours():
    acc, _, cover = splat(np.array([[2.0]], np.float32), np.array([1.25], np.float32),
                             np.array([0.5], np.float32), np.array([1.0], np.float32), 2, 3)
    np.testing.assert_allclose(cover.reshape(2, 3), [[0, 0.375, 0.125], [0, 0.375, 0.125]])
    np.testing.assert_allclose(acc[:, 0], 2 * cover)


@pytest.mark.parametrize("t", [0.5, 0.2])
def test_splat_motion_backends_agree(t):
    rng = np.random.default_rng(1)
    h, w = 24, 31
    shift = np.array([7.0, 0.0], np.float32)  # both move right: the left columns get holes
    f01 = (shift + rng.normal(0, 2, (h, w, 2))).astype(np.float32)
    f10 = (shift + rng.normal(0, 2, (h, w, 2))).astype(np.float32)
    occ0, occ1, err0, err1 = (rng.uniform(0, 1, (h, w)).astype(np.float32) for _ in range(4))
    ref = splat_motion(f01, f10, occ0, occ1, err0, err1, t, 20.0, backend="numpy")
    fast = splat_motion(f01, f10, occ0, occ1, err0, err1, t, 20.0, backend="numba")
    np.testing.assert_array_equal(ref[1], fast[1])
    np.testing.assert_allclose(ref[0], fast[0], rtol=1e-5, atol=1e-5)
    assert ref[1].any() and not ref[1].all()  # both known pixels and holes were exercised


def test_flow_dis_is_the_same_with_either_splat_backend():
    big = texture(96, 120, seed=5)[None]
    f0, f1 = big[..., 8:72, 8:104], big[..., 12:76, 3:99]
    ref, fast = create_model("flow_dis", splat_backend="numpy"), create_model("flow_dis")
    with torch.no_grad():
        for t in (0.5, 0.3):
            a, b = ref(f0, f1, t=t, return_aux=True), fast(f0, f1, t=t, return_aux=True)
            assert (a[0] - b[0]).abs().max() < 1e-4
            for key in ("flow_t0", "flow_t1", "visibility"):
                assert (a[1][key] - b[1][key]).abs().max() < 1e-4, key
    with pytest.raises(VfikitError, match="splat_backend"):
        create_model("flow_dis", splat_backend="gpu")


def test_consistency_backends_agree_and_score_what_they_claim():
    rng = np.random.default_rng(2)
    h, w = 20, 27
    flow_ab = rng.normal(0, 3, (h, w, 2)).astype(np.float32)
    back = -flow_ab.copy()  # a perfect forward-backward match...
    back[:5] += 40.0  # ...except the top rows, which come back far away
    back[5:7, :, 0] = np.nan  # NaN: numpy's clip passes it on, the loop scores it 0 (finite, checked below)
    img_a = rng.uniform(0, 1, (h, w, 3)).astype(np.float32)
    warped_b = img_a + np.float32(0.25)
    ref = consistency(flow_ab, back, img_a, warped_b, 0.01, 0.5, backend="numpy")
    fast = consistency(flow_ab, back, img_a, warped_b, 0.01, 0.5, backend="numba")
    for a, b in zip(ref, fast):
        assert a.dtype == b.dtype == np.float32 and a.shape == b.shape == (h, w)
    np.testing.assert_allclose(fast[0][7:], ref[0][7:], atol=1e-6)
    np.testing.assert_allclose(fast[1], ref[1], atol=1e-6)
    assert (fast[0][:5] == 1).all() and (fast[0][7:] == 0).all()  # occluded where it claimed, visible elsewhere
    np.testing.assert_allclose(fast[1], 0.25, atol=1e-6)
    assert np.isfinite(fast[0]).all()
    with pytest.raises(VfikitError, match="backend"):
        consistency(flow_ab, back, img_a, warped_b, 0.01, 0.5, backend="cuda")
