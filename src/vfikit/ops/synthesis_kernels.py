"""The compiled loops of the fused guided AdaCoF synthesis (numba, numpy only: no torch).

:func:`guided_rows` computes output rows of :func:`vfikit.ops.guided_synthesis.guided_adacof_synthesis`,
which checks every shape and hands the tensors over as arrays; its helpers below are plain ``nogil``
functions. This module imports no torch so that ``vfikit.ops.warmup`` can compile the loop in a process of
its own while a job starts (see there).
"""

from __future__ import annotations

import numpy as np
from numba import njit

_FLAGS = {"contract"}  # fused multiply-add only: no reassociation, NaN and infinity rules kept
# Every kernel below is a plain ``nogil`` function (no ``parallel=True``, no IR-level inlining): the former
# single parallel kernel took 15-40 s to compile on first use. Rows are spread over threads by
# :func:`vfikit.ops._threads.run_rows` instead. The helpers are only called from ``guided_rows``, whose cached
# library holds them: they get no Python or C wrapper and no cache files of their own (0.5 s less to compile).
_INNER = {"nogil": True, "fastmath": _FLAGS, "no_cpython_wrapper": True, "no_cfunc_wrapper": True}


@njit(**_INNER)
def _load_low(a, n, y, bf16_bits, low):
    """low[k, x] = a[n, k, y, x] as float32 (K, w): ``a`` is float32, or (``bf16_bits``) the int16 bits of
    bfloat16 values (a bfloat16 is the upper half of the float32 with the same value)."""
    if bf16_bits:
        bits = low.view(np.uint32)
        for k in range(low.shape[0]):
            for x in range(low.shape[1]):
                bits[k, x] = np.uint32(np.uint16(a[n, k, y, x])) << np.uint32(16)
    else:
        for k in range(low.shape[0]):
            for x in range(low.shape[1]):
                low[k, x] = a[n, k, y, x]


@njit(**_INNER)
def _widen(low, cx0, cx1, lx, dst):
    """dst[k, j] (K, W) = low[k] (K, w) upsampled along the row: (1 - lx_j) low[k, cx0_j] + lx_j low[k, cx1_j]."""
    one = np.float32(1.0)
    for k in range(dst.shape[0]):
        src, row = low[k], dst[k]
        for j in range(row.shape[0]):
            row[j] = (one - lx[j]) * src[cx0[j]] + lx[j] * src[cx1[j]]


@njit(**_INNER)
def _fill_slot(heads, occ, n, y, direct, bf16_bits, cx0, cx1, lx, low, low1, wide, wocc, s):
    """Slot ``s`` of the row cache <- low-resolution row y of the six kernel heads and the occlusion head,
    upsampled along the row (``direct``: copied, the heads have the frames' size)."""
    for h in range(6):
        a = heads[h]
        if direct:
            _load_low(a, n, y, bf16_bits, wide[s, h])
        else:
            _load_low(a, n, y, bf16_bits, low)
            _widen(low, cx0, cx1, lx, wide[s, h])
    if direct:
        _load_low(occ, n, y, bf16_bits, wocc[s])
    else:
        _load_low(occ, n, y, bf16_bits, low1)
        _widen(low1, cx0, cx1, lx, wocc[s])


@njit(**_INNER)
def _lerp(top, bottom, ly, out):
    """out = (1 - ly) top + ly bottom, (K, W) each: the upsampling between the two cached rows."""
    hy = np.float32(1.0) - ly
    for k in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[k, j] = hy * top[k, j] + ly * bottom[k, j]


@njit(**_INNER)
def _signed_taps(buf, mean):
    """buf[:, j] <- buf[:, j] - mean(buf[:, j]) + onehot(centre), for every column j (in place); ``mean``
    is (W,) scratch."""
    taps, wd = buf.shape
    mean[:] = 0.0
    for t in range(taps):
        for j in range(wd):
            mean[j] += buf[t, j]
    scale = np.float32(1.0 / taps)
    for t in range(taps):
        for j in range(wd):
            buf[t, j] -= mean[j] * scale
    for j in range(wd):
        buf[taps // 2, j] += 1


@njit(**_INNER)
def _clamp_position(p, hi):
    """The clean rule's position: NaN and anything below 0 -> 0, above ``hi`` -> ``hi``."""
    if not p > 0.0:
        return np.float32(0.0)
    if p > hi:
        return hi
    return p


@njit(**_INNER)
def _sample_row(x, n, i, w, oy, ox, fy, fx, by, bx, acc):
    """acc[c, j] = sum_t w[t, j] * bilinear(x[n, c], i + by_t + fy_j + oy[t, j], j + bx_t + fx_j + ox[t, j])."""
    h, wd = x.shape[2], x.shape[3]
    hy, hx, one = np.float32(h - 1), np.float32(wd - 1), np.float32(1.0)  # float32 throughout
    p0, p1, p2 = x[n, 0], x[n, 1], x[n, 2]
    acc[:] = 0.0
    for t in range(w.shape[0]):
        wr, oyr, oxr = w[t], oy[t], ox[t]
        row, col = np.float32(i + by[t]), np.float32(bx[t])
        for j in range(wd):
            py = _clamp_position((fy[j] + oyr[j]) + row, hy)
            px = _clamp_position((fx[j] + oxr[j]) + (np.float32(j) + col), hx)
            fly, flx = np.floor(py), np.floor(px)
            y0, x0 = int(fly), int(flx)
            y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, wd - 1)
            ly, lx = py - fly, px - flx
            wt = wr[j]
            c00 = wt * ((one - ly) * (one - lx))
            c01 = wt * ((one - ly) * lx)
            c10 = wt * (ly * (one - lx))
            c11 = wt * (ly * lx)
            acc[0, j] += c00 * p0[y0, x0] + c10 * p0[y1, x0] + c01 * p0[y0, x1] + c11 * p0[y1, x1]
            acc[1, j] += c00 * p1[y0, x0] + c10 * p1[y1, x0] + c01 * p1[y0, x1] + c11 * p1[y1, x1]
            acc[2, j] += c00 * p2[y0, x0] + c10 * p2[y1, x0] + c01 * p2[y0, x1] + c11 * p2[y1, x1]


@njit(**_INNER)
def _cached_slots(tags, tag_a, tag_b):
    """The cache slots (0 or 1) holding tags ``tag_a`` and ``tag_b``, and the slots that must be (re)filled
    (-1: none): ``tags`` (2,) is updated to the tags the slots will hold."""
    fill_a = fill_b = -1
    for which in range(2):
        tag = tag_a if which == 0 else tag_b
        if tags[0] != tag and tags[1] != tag:
            s = 0 if (tags[0] != tag_a and tags[0] != tag_b) else 1
            tags[s] = tag
            if which == 0:
                fill_a = s
            else:
                fill_b = s
    return (0 if tags[0] == tag_a else 1), (0 if tags[0] == tag_b else 1), fill_a, fill_b


@njit(nogil=True, cache=True, fastmath=_FLAGS)
def guided_rows(lo, hi, frames, heads, occ, flows, b0, by, bx, ry0, ry1, lys, cx0, cx1, lxs, direct, signed,
                 bf16_bits, wide, wocc, low, low1, rowbuf, acc, mean, out):
    """Output rows r in [lo, hi) of the flattened (B * H) rows. Scratch: ``wide`` (2, 6, K, W) and ``wocc``
    (2, 1, W) the row cache (two upsampled low-resolution rows, reused by consecutive output rows), ``low``
    (K, w), ``low1`` (1, w), ``rowbuf`` (3, K, W), ``acc`` (2, 3, W), ``mean`` (W,)."""
    h, lh = out.shape[2], heads[0].shape[2]
    tags = np.full(2, -1, dtype=np.int64)
    for r in range(lo, hi):
        n = r // h
        i = r - n * h
        y0, y1, ly = ry0[i], ry1[i], lys[i]
        sa, sb, fa, fb = _cached_slots(tags, n * lh + y0, n * lh + y1)
        if fa >= 0:
            _fill_slot(heads, occ, n, y0, direct, bf16_bits, cx0, cx1, lxs, low, low1, wide, wocc, fa)
        if fb >= 0:
            _fill_slot(heads, occ, n, y1, direct, bf16_bits, cx0, cx1, lxs, low, low1, wide, wocc, fb)
        for f in range(2):
            if direct:  # the cached row is this row (used once): read and changed in place
                kw, koy, kox = wide[sa, 3 * f], wide[sa, 3 * f + 1], wide[sa, 3 * f + 2]
            else:
                kw, koy, kox = rowbuf[0], rowbuf[1], rowbuf[2]
                for q in range(3):  # weight, offset_y, offset_x of frame f at row i
                    _lerp(wide[sa, 3 * f + q], wide[sb, 3 * f + q], ly, rowbuf[q])
            if signed:  # raw head outputs -> signed taps summing to one: r - mean(r) + onehot(centre)
                _signed_taps(kw, mean)
            flow = flows[f]
            _sample_row(frames[f], n, i, kw, koy, kox, flow[n, 1, i], flow[n, 0, i], by, bx, acc[f])
        if direct:
            occ_row = wocc[sa, 0]
        else:
            _lerp(wocc[sa], wocc[sb], ly, rowbuf[0, :1])
            occ_row = rowbuf[0, 0]
        for j in range(out.shape[3]):
            b = b0[n, 0, i, j]
            v = 1.0 / (1.0 + np.exp(-(np.log(b / (1.0 - b)) + occ_row[j])))
            for c in range(3):
                out[n, c, i, j] = v * acc[0, c, j] + (1.0 - v) * acc[1, c, j]


def new_scratch(taps: int, lw: int, wd: int) -> tuple[np.ndarray, ...]:
    """Scratch arrays of :func:`guided_rows` (``wide``, ``wocc``, ``low``, ``low1``, ``rowbuf``, ``acc``,
    ``mean``) for ``taps`` taps, heads ``lw`` and frames ``wd`` pixels wide."""
    f32 = np.float32
    return (np.empty((2, 6, taps, wd), f32), np.empty((2, 1, wd), f32), np.empty((taps, lw), f32),
            np.empty((1, lw), f32), np.empty((3, taps, wd), f32), np.empty((2, 3, wd), f32), np.empty(wd, f32))

