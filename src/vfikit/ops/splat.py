"""Bilinear forward splatting (what ``flow_dis`` uses to carry flows to time t).

``splat(values, px, py, weight, h, w)`` adds every source point's values, times its weight and the
bilinear weights of its four neighbours around ``(px, py)``, into an (H*W, C) grid. Two backends with
one contract: ``"numba"`` (a compiled loop over the points, the default) and ``"numpy"`` (``np.bincount``
per corner and channel, the reference twin; tests check that they agree). Both accumulate in float64.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from vfikit.errors import VfikitError

SPLAT_BACKENDS = ("numba", "numpy")


def _splat_numpy(values: np.ndarray, px: np.ndarray, py: np.ndarray, weight: np.ndarray, h: int, w: int):
    x0, y0 = np.floor(px), np.floor(py)
    fx, fy = px - x0, py - y0
    x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
    channels = np.ascontiguousarray(values.T, dtype=np.float64)  # (C, N)
    acc = np.zeros((values.shape[1], h * w), np.float64)
    wsum = np.zeros(h * w, np.float64)
    cover = np.zeros(h * w, np.float64)
    for dy, dx, bw in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
        xi, yi = x0 + dx, y0 + dy
        inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
        bw = np.where(inside, bw, 0.0)  # out-of-frame corners get weight 0 at a valid dummy index
        idx = np.where(inside, yi * w + xi, 0)
        ww = bw * weight
        wsum += np.bincount(idx, weights=ww, minlength=h * w)
        cover += np.bincount(idx, weights=bw, minlength=h * w)
        for c in range(channels.shape[0]):
            acc[c] += np.bincount(idx, weights=ww * channels[c], minlength=h * w)
    return np.ascontiguousarray(acc.T), wsum, cover


@njit(nogil=True, no_cpython_wrapper=True, no_cfunc_wrapper=True)  # called from the loops below only
def _splat_point(x, y, wt, vals, h, w, acc, wsum, cover):  # pragma: no cover - compiled
    """Add one point's (C,) ``vals`` at (x, y) with weight ``wt`` to its four bilinear neighbours."""
    if not (x > -2.0 and x < w + 1.0 and y > -2.0 and y < h + 1.0):  # also drops NaN positions
        return
    xf, yf = np.floor(x), np.floor(y)
    fx, fy = x - xf, y - yf
    x0, y0 = int(xf), int(yf)
    for dy in range(2):
        yi = y0 + dy
        if yi < 0 or yi >= h:
            continue
        by = fy if dy else 1.0 - fy
        for dx in range(2):
            xi = x0 + dx
            if xi < 0 or xi >= w:
                continue
            bw = by * (fx if dx else 1.0 - fx)
            k = yi * w + xi
            ww = bw * wt
            wsum[k] += ww
            cover[k] += bw
            for ch in range(vals.shape[0]):
                acc[k, ch] += ww * vals[ch]


@njit(cache=True, nogil=True)
def _splat_loop(values, px, py, weight, h, w, acc, wsum, cover):  # pragma: no cover - compiled
    for i in range(values.shape[0]):
        _splat_point(px[i], py[i], weight[i], values[i], h, w, acc, wsum, cover)


def splat(values: np.ndarray, px: np.ndarray, py: np.ndarray, weight: np.ndarray, h: int, w: int,
          backend: str = "numba") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear forward splatting of N points.

    Args:
        values: (N, C) what each point carries. px, py: (N,) its position (column, row) in the grid.
        weight: (N,) its weight. h, w: the grid size. backend: ``"numba"`` or ``"numpy"``.
    Returns:
        ``(acc, wsum, cover)``: (H*W, C) weighted sums, (H*W,) weight sums and (H*W,) coverage (the sum
        of the bilinear weights alone, which says where anything landed whatever its weight), float64.
        Corners outside the grid are dropped.
    """
    if backend not in SPLAT_BACKENDS:
        raise VfikitError(f"unknown splat backend {backend!r}; choose one of {', '.join(SPLAT_BACKENDS)}")
    if backend == "numpy":
        return _splat_numpy(values, px, py, weight, h, w)
    acc = np.zeros((h * w, values.shape[1]), np.float64)
    wsum = np.zeros(h * w, np.float64)
    cover = np.zeros(h * w, np.float64)
    _splat_loop(np.ascontiguousarray(values, np.float64), np.ascontiguousarray(px, np.float64),
                np.ascontiguousarray(py, np.float64), np.ascontiguousarray(weight, np.float64), h, w, acc, wsum,
                cover)
    return acc, wsum, cover


def _motion_values(f: np.ndarray, occ: np.ndarray, t: float, source: int) -> np.ndarray:
    """(N, 6) values a source pixel of frame ``source`` carries to t: F_t0 (x, y), F_t1 (x, y), vis0, vis1."""
    u, o = f.reshape(-1, 2), occ.ravel()
    if source == 0:
        return np.stack([-t * u[:, 0], -t * u[:, 1], (1 - t) * u[:, 0], (1 - t) * u[:, 1], np.ones_like(o), 1 - o], 1)
    return np.stack([t * u[:, 0], t * u[:, 1], -(1 - t) * u[:, 0], -(1 - t) * u[:, 1], 1 - o, np.ones_like(o)], 1)


def _normalise(acc: np.ndarray, wsum: np.ndarray, cover: np.ndarray, eps: float):
    known = (cover > eps) & (wsum > 0)
    out = np.where(known[:, None], acc / np.where(known, wsum, 1.0)[:, None], 0.0).astype(np.float32)
    return out, known


@njit(cache=True, nogil=True)
def _splat_motion_loop(f01, f10, occ0, occ1, err0, err1, t, beta, eps, out, known):  # pragma: no cover - compiled
    h, w = occ0.shape
    acc = np.zeros((h * w, 6), np.float64)
    wsum = np.zeros(h * w, np.float64)
    cover = np.zeros(h * w, np.float64)
    vals = np.zeros(6, np.float64)
    for source in range(2):
        f = f01 if source == 0 else f10
        occ = occ0 if source == 0 else occ1
        err = err0 if source == 0 else err1
        s = t if source == 0 else 1.0 - t  # how far the source pixel travels along its flow
        prior = (1.0 - t + 1e-3) if source == 0 else (t + 1e-3)
        for y in range(h):
            for x in range(w):
                ux, uy = np.float64(f[y, x, 0]), np.float64(f[y, x, 1])
                o = np.float64(occ[y, x])
                # the same float32 rounding as the numpy twin's values and positions
                px = np.float64(np.float32(x) + np.float32(np.float32(s) * np.float32(ux)))
                py = np.float64(np.float32(y) + np.float32(np.float32(s) * np.float32(uy)))
                if source == 0:
                    vals[0], vals[1], vals[2], vals[3] = -t * ux, -t * uy, (1 - t) * ux, (1 - t) * uy
                    vals[4], vals[5] = 1.0, 1.0 - o
                else:
                    vals[0], vals[1], vals[2], vals[3] = t * ux, t * uy, -(1 - t) * ux, -(1 - t) * uy
                    vals[4], vals[5] = 1.0 - o, 1.0
                wt = np.exp(-beta * (np.float64(err[y, x]) + o)) * prior
                _splat_point(px, py, wt, vals, h, w, acc, wsum, cover)
    for k in range(h * w):
        if cover[k] > eps and wsum[k] > 0:
            known[k] = True
            for ch in range(6):
                out[k, ch] = acc[k, ch] / wsum[k]


def splat_motion(f01: np.ndarray, f10: np.ndarray, occ0: np.ndarray, occ1: np.ndarray, err0: np.ndarray,
                 err1: np.ndarray, t: float, beta: float, eps: float = 1e-3,
                 backend: str = "numba") -> tuple[np.ndarray, np.ndarray]:
    """Both frames' pixels splatted to time t, as ``flow_dis`` does (softmax splatting).

    Every pixel of frame0 moves by ``t * f01`` and carries ``(F_t0, F_t1, vis0, vis1) = (-t f01,
    (1 - t) f01, 1, 1 - occ0)``; every pixel of frame1 moves by ``(1 - t) * f10`` and carries
    ``(t f10, -(1 - t) f10, 1 - occ1, 1)``. Weights: ``exp(-beta (err + occ))`` times the nearer
    frame's prior (``1 - t + 1e-3`` for frame0, ``t + 1e-3`` for frame1).

    Args:
        f01, f10: (H, W, 2) float32 flows (x, y). occ0, occ1: (H, W) occlusion scores in [0, 1].
        err0, err1: (H, W) photometric errors. t: time in [0, 1]. beta: softmax sharpness.
        eps: coverage below which a pixel counts as a hole. backend: ``"numba"`` or ``"numpy"``.
    Returns:
        ``(values, known)``: (H, W, 6) float32 weighted means (0 where nothing landed) and the (H, W)
        bool mask of pixels something landed on.
    """
    h, w = occ0.shape
    if backend not in SPLAT_BACKENDS:
        raise VfikitError(f"unknown splat backend {backend!r}; choose one of {', '.join(SPLAT_BACKENDS)}")
    if backend == "numpy":
        gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        gx, gy = gx.ravel(), gy.ravel()
        u01, u10 = f01.reshape(-1, 2), f10.reshape(-1, 2)
        wt0 = np.exp(-beta * (err0.ravel() + occ0.ravel())) * (1 - t + 1e-3)
        wt1 = np.exp(-beta * (err1.ravel() + occ1.ravel())) * (t + 1e-3)
        acc0, ws0, cov0 = splat(_motion_values(f01, occ0, t, 0), gx + np.float32(t) * u01[:, 0],
                                gy + np.float32(t) * u01[:, 1], wt0, h, w, backend)
        acc1, ws1, cov1 = splat(_motion_values(f10, occ1, t, 1), gx + np.float32(1 - t) * u10[:, 0],
                                gy + np.float32(1 - t) * u10[:, 1], wt1, h, w, backend)
        out, known = _normalise(acc0 + acc1, ws0 + ws1, cov0 + cov1, eps)
        return out.reshape(h, w, 6), known.reshape(h, w)
    out = np.zeros((h * w, 6), np.float32)
    known = np.zeros(h * w, np.bool_)
    _splat_motion_loop(np.ascontiguousarray(f01, np.float32), np.ascontiguousarray(f10, np.float32),
                       np.ascontiguousarray(occ0, np.float32), np.ascontiguousarray(occ1, np.float32),
                       np.ascontiguousarray(err0, np.float32), np.ascontiguousarray(err1, np.float32),
                       float(t), float(beta), float(eps), out, known)
    return out.reshape(h, w, 6), known.reshape(h, w)


def _consistency_numpy(flow_ab, back, img_a, warped_b, alpha, beta):
    err = np.sum((flow_ab + back) ** 2, axis=2)
    bound = alpha * (np.sum(flow_ab**2, axis=2) + np.sum(back**2, axis=2)) + beta
    # 0 well inside the bound, 1 beyond twice the bound: linear in between.
    occ = np.clip(err / bound - 1.0, 0.0, 1.0).astype(np.float32)
    return occ, np.abs(img_a - warped_b).mean(axis=2)


@njit(cache=True, nogil=True)
def _consistency_loop(flow_ab, back, img_a, warped_b, alpha, beta, occ, photo):  # pragma: no cover - compiled
    h, w, ch = img_a.shape
    for i in range(h):
        for j in range(w):
            fx, fy, bx, by = flow_ab[i, j, 0], flow_ab[i, j, 1], back[i, j, 0], back[i, j, 1]
            err = (fx + bx) ** 2 + (fy + by) ** 2
            bound = alpha * ((fx * fx + fy * fy) + (bx * bx + by * by)) + beta
            o = err / bound - 1.0
            occ[i, j] = 0.0 if not o > 0.0 else (1.0 if o > 1.0 else o)
            s = 0.0
            for c in range(ch):
                s += abs(img_a[i, j, c] - warped_b[i, j, c])
            photo[i, j] = s / ch


def consistency(flow_ab: np.ndarray, back: np.ndarray, img_a: np.ndarray, warped_b: np.ndarray,
                alpha: float, beta: float, backend: str = "numba") -> tuple[np.ndarray, np.ndarray]:
    """How well each pixel of frame a is matched in frame b: the soft forward-backward occlusion score
    and the photometric error.

    ``occ = clip(|F_ab + F_ba(x + F_ab)|^2 / (alpha (|F_ab|^2 + |F_ba(x + F_ab)|^2) + beta) - 1, 0, 1)``
    (0 well inside the bound, 1 beyond twice it) and ``err = mean_c |img_a - img_b(x + F_ab)|``.

    Args:
        flow_ab: (H, W, 2) float32 flow a->b (x, y). back: (H, W, 2) flow b->a warped to a (``F_ba(x + F_ab)``).
        img_a: (H, W, C) float32 frame a. warped_b: (H, W, C) frame b warped to a (``img_b(x + F_ab)``).
        alpha, beta: the forward-backward bound. backend: ``"numba"`` (one compiled pass) or ``"numpy"``
            (the reference twin; tests check that they agree).
    Returns:
        ``(occ, err)``: (H, W) float32 each.
    """
    if backend not in SPLAT_BACKENDS:
        raise VfikitError(f"unknown splat backend {backend!r}; choose one of {', '.join(SPLAT_BACKENDS)}")
    if backend == "numpy":
        occ, err = _consistency_numpy(flow_ab, back, img_a, warped_b, alpha, beta)
        return occ, err.astype(np.float32)
    h, w = flow_ab.shape[:2]
    occ, err = np.empty((h, w), np.float32), np.empty((h, w), np.float32)
    _consistency_loop(*(np.ascontiguousarray(a, np.float32) for a in (flow_ab, back, img_a, warped_b)),
                      float(alpha), float(beta), occ, err)
    return occ, err
