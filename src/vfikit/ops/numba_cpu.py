"""Compiled CPU kernels (numba). The default path on CPU.

Same contract as :mod:`vfikit.ops.torch_backend`: values only, autograd lives in ``functional.py``.
Inputs are copied once to channels-last so that the inner loop over channels is contiguous.
Forward keeps one (W, C) accumulator per output row; backward recomputes every sample and writes
the image gradient into one private buffer per thread chunk (summed at the end), so peak extra
memory is bounded by (threads x input size), never by the number of taps.

float32 and float64 are computed natively; float16/bfloat16 are computed in float32 and cast back.
"""

from __future__ import annotations

import numba
import numpy as np
import torch
from numba import njit, prange

from vfikit.ops._geometry import RULE_ADACOF, RULE_DSEP
from vfikit.ops._sampling import BIG
from vfikit.ops._threads import run_rows


@njit
def _clampi(v, hi):
    if v < 0:
        return 0
    if v > hi:
        return hi
    return v


@njit
def _sanitize(v):
    if not v > -BIG:  # also catches NaN
        return -BIG
    if v > BIG:
        return BIG
    return v


@njit
def _axis(off, base, length, rule):
    """(i0, i1, w0, w1, active) of one sample; see ``vfikit.ops._sampling.axis_weights``."""
    hi = length - 1
    o = _sanitize(off)
    if rule == RULE_ADACOF:
        whole = np.trunc(o)
        frac = o - whole
        p0 = int(base + whole)
        return _clampi(p0, hi), _clampi(p0 + 1, hi), 1.0 - frac, frac, 1.0
    p = _sanitize(o + base)
    act = 1.0 if (p >= 0.0 and p <= hi) else 0.0
    pc = p
    if pc < 0.0:
        pc = 0.0
    elif pc > hi:
        pc = float(hi)
    if rule == RULE_DSEP:
        fl = int(np.floor(p))
        top = _clampi(fl, hi)
        bottom = _clampi(fl + 1, hi)
        return top, bottom, 1.0 + (top - pc), 1.0 - (bottom - pc), act
    fl = np.floor(pc)
    i0 = int(fl)
    i1 = i0 + 1
    if i1 > hi:
        i1 = hi
    w1 = pc - fl
    return i0, i1, 1.0 - w1, w1, act


@njit
def _tap_weight(w, kv, kh, m, sep, n, t, ti, tj, i, j):
    """AdaCoF: the tap's weight; DSepConv: vertical[ti] * horizontal[tj] * mask[t]."""
    if sep:
        return kv[n, ti, i, j] * kh[n, tj, i, j] * m[n, t, i, j]
    return w[n, t, i, j]


@njit(nogil=True, cache=True)
def _deform_fwd(lo, hi, x, w, kv, kh, m, oy, ox, by, bx, rule, sep, out):
    """Output rows r in [lo, hi) of the flattened (N * H) rows (a plain ``nogil`` kernel: ``run_rows`` spreads
    the rows over threads; it compiles in about a second, a ``parallel=True`` twin took several)."""
    ch = x.shape[3]
    hin, win = x.shape[1], x.shape[2]
    taps, h, wd = oy.shape[1], oy.shape[2], oy.shape[3]
    nk = kv.shape[1]
    acc = np.empty((wd, ch), dtype=out.dtype)
    cw = np.empty(4, dtype=out.dtype)
    for r in range(lo, hi):
        n = r // h
        i = r - n * h
        acc[:] = 0.0
        for t in range(taps):
            ti = t // nk
            tj = t - ti * nk
            for j in range(wd):
                wt = _tap_weight(w, kv, kh, m, sep, n, t, ti, tj, i, j)
                y0, y1, wy0, wy1, _ = _axis(oy[n, t, i, j], i + by[t], hin, rule)
                x0, x1, wx0, wx1, _ = _axis(ox[n, t, i, j], j + bx[t], win, rule)
                cw[0] = wt * (wy0 * wx0)
                cw[1] = wt * (wy1 * wx0)
                cw[2] = wt * (wy0 * wx1)
                cw[3] = wt * (wy1 * wx1)
                for c in range(ch):
                    acc[j, c] += (cw[0] * x[n, y0, x0, c] + cw[1] * x[n, y1, x0, c]
                                  + cw[2] * x[n, y0, x1, c] + cw[3] * x[n, y1, x1, c])
        for c in range(ch):
            for j in range(wd):
                out[n, c, i, j] = acc[j, c]


@njit(parallel=True, cache=True)
def _deform_bwd(x, w, kv, kh, m, oy, ox, by, bx, rule, sep, g, need_x, need_w, need_off,
                chunks, gxbuf, gw, gkv, gkh, gm, goy, gox):
    n_img, hin, win, ch = x.shape
    taps, h, wd = oy.shape[1], oy.shape[2], oy.shape[3]
    nk = kv.shape[1]
    rows_total = n_img * h
    need_s = need_w or need_off
    for k in prange(chunks):
        r_lo = (k * rows_total) // chunks
        r_hi = ((k + 1) * rows_total) // chunks
        # Per-sample scalars live in small arrays of the work dtype so the channel loop stays in
        # that dtype (float32 math vectorises; mixing in float64 does not).
        cw = np.empty(4, dtype=x.dtype)  # corner weights
        gwc = np.empty(4, dtype=x.dtype)  # tap weight x corner weights (image gradient)
        ax_w = np.empty(4, dtype=x.dtype)  # wx0, wx1, wy0, wy1
        acc = np.zeros(3, dtype=x.dtype)  # s, dy, dx
        for r in range(r_lo, r_hi):
            n = r // h
            i = r - n * h
            for t in range(taps):
                ti = t // nk
                tj = t - ti * nk
                for j in range(wd):
                    wt = _tap_weight(w, kv, kh, m, sep, n, t, ti, tj, i, j)
                    y0, y1, wy0, wy1, ay = _axis(oy[n, t, i, j], i + by[t], hin, rule)
                    x0, x1, wx0, wx1, ax = _axis(ox[n, t, i, j], j + bx[t], win, rule)
                    cw[0] = wy0 * wx0
                    cw[1] = wy1 * wx0
                    cw[2] = wy0 * wx1
                    cw[3] = wy1 * wx1
                    ax_w[0] = wx0
                    ax_w[1] = wx1
                    ax_w[2] = wy0
                    ax_w[3] = wy1
                    for q in range(4):
                        gwc[q] = wt * cw[q]
                    acc[:] = 0.0
                    for c in range(ch):
                        gc = g[n, i, j, c]
                        v00 = x[n, y0, x0, c]
                        v10 = x[n, y1, x0, c]
                        v01 = x[n, y0, x1, c]
                        v11 = x[n, y1, x1, c]
                        if need_s:
                            acc[0] += gc * (cw[0] * v00 + cw[1] * v10 + cw[2] * v01 + cw[3] * v11)
                            acc[1] += gc * (ax_w[0] * (v10 - v00) + ax_w[1] * (v11 - v01))
                            acc[2] += gc * (ax_w[2] * (v01 - v00) + ax_w[3] * (v11 - v10))
                        if need_x:
                            gxbuf[k, n, y0, x0, c] += gwc[0] * gc
                            gxbuf[k, n, y1, x0, c] += gwc[1] * gc
                            gxbuf[k, n, y0, x1, c] += gwc[2] * gc
                            gxbuf[k, n, y1, x1, c] += gwc[3] * gc
                    s = acc[0]
                    if need_w:
                        if sep:
                            gkv[n, ti, i, j] += s * kh[n, tj, i, j] * m[n, t, i, j]
                            gkh[n, tj, i, j] += s * kv[n, ti, i, j] * m[n, t, i, j]
                            gm[n, t, i, j] = s * kv[n, ti, i, j] * kh[n, tj, i, j]
                        else:
                            gw[n, t, i, j] = s
                    if need_off:
                        goy[n, t, i, j] = wt * ay * acc[1]
                        gox[n, t, i, j] = wt * ax * acc[2]


@njit(parallel=True, cache=True)
def _sep_fwd(x, kv, kh, base, out):
    n_img, hin, win, ch = x.shape
    taps, h, wd = kv.shape[1], kv.shape[2], kv.shape[3]
    for r in prange(n_img * h):
        n = r // h
        i = r - n * h
        acc = np.zeros((wd, ch), dtype=out.dtype)
        inner = np.empty((wd, ch), dtype=out.dtype)
        for a in range(taps):
            yy = _clampi(i + base + a, hin - 1)
            inner[:, :] = 0.0
            for b in range(taps):
                for j in range(wd):
                    xx = _clampi(j + base + b, win - 1)
                    kb = kh[n, b, i, j]
                    for c in range(ch):
                        inner[j, c] += kb * x[n, yy, xx, c]
            for j in range(wd):
                ka = kv[n, a, i, j]
                for c in range(ch):
                    acc[j, c] += ka * inner[j, c]
        for c in range(ch):
            for j in range(wd):
                out[n, c, i, j] = acc[j, c]


@njit(parallel=True, cache=True)
def _sep_bwd(x, kv, kh, base, g, need_x, need_k, chunks, gxbuf, gkv, gkh):
    n_img, hin, win, ch = x.shape
    taps, h, wd = kv.shape[1], kv.shape[2], kv.shape[3]
    rows_total = n_img * h
    for k in prange(chunks):
        r_lo = (k * rows_total) // chunks
        r_hi = ((k + 1) * rows_total) // chunks
        for r in range(r_lo, r_hi):
            n = r // h
            i = r - n * h
            for a in range(taps):
                yy = _clampi(i + base + a, hin - 1)
                for b in range(taps):
                    for j in range(wd):
                        xx = _clampi(j + base + b, win - 1)
                        if need_k:
                            d = 0.0
                            for c in range(ch):
                                d += g[n, i, j, c] * x[n, yy, xx, c]
                            gkv[n, a, i, j] += d * kh[n, b, i, j]
                            gkh[n, b, i, j] += d * kv[n, a, i, j]
                        if need_x:
                            kk = kv[n, a, i, j] * kh[n, b, i, j]
                            for c in range(ch):
                                gxbuf[k, n, yy, xx, c] += kk * g[n, i, j, c]


# ----------------------------------------------------------------------------- torch adapters

_DUMMY4: dict[np.dtype, np.ndarray] = {}


def _dummy(dtype) -> np.ndarray:
    if dtype not in _DUMMY4:
        _DUMMY4[dtype] = np.zeros((1, 1, 1, 1), dtype=dtype)
    return _DUMMY4[dtype]


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


def _np(t: torch.Tensor | None, dtype: torch.dtype):
    if t is None:
        return None
    return t.detach().to(dtype).contiguous().numpy()


def _nhwc(t: torch.Tensor, dtype: torch.dtype) -> np.ndarray:
    return t.detach().to(dtype).permute(0, 2, 3, 1).contiguous().numpy()


def _chunks(rows: int) -> int:
    """Work chunks of the backward: one per thread (each owns a private image-gradient buffer)."""
    return max(1, min(numba.get_num_threads(), rows))


def _check_cpu(*tensors) -> None:
    for t in tensors:
        if t is not None and t.device.type != "cpu":
            raise ValueError(f"the numba backend runs on CPU only, got a tensor on {t.device}")


def deform_forward(x, weight, sep, offset_y, offset_x, by, bx, rule) -> torch.Tensor:
    _check_cpu(x)
    wdt = _work_dtype(x.dtype)
    npdt = np.float64 if wdt == torch.float64 else np.float32
    n, c = x.shape[:2]
    h, w = offset_y.shape[2:]
    out = np.empty((n, c, h, w), dtype=npdt)
    dummy = _dummy(npdt)
    if sep is None:
        args = (_np(weight, wdt), dummy, dummy, dummy)
    else:
        args = (dummy, *(_np(s, wdt) for s in sep))
    if n * h * w > 0:
        fixed = (_nhwc(x, wdt), *args, _np(offset_y, wdt), _np(offset_x, wdt), np.asarray(by, npdt),
                 np.asarray(bx, npdt), rule, sep is not None, out)
        run_rows(n * h, lambda lo, hi: _deform_fwd(lo, hi, *fixed))
    return torch.from_numpy(out).to(x.dtype)


def deform_backward(x, weight, sep, offset_y, offset_x, by, bx, rule, grad, needs):
    _check_cpu(x)
    need_x, need_w, need_off = needs
    wdt = _work_dtype(x.dtype)
    npdt = np.float64 if wdt == torch.float64 else np.float32
    n, c, hin, win = x.shape
    t, h, w = offset_y.shape[1:]
    dummy = _dummy(npdt)
    chunks = _chunks(n * h)
    gxbuf = np.zeros((chunks, n, hin, win, c), npdt) if need_x else np.zeros((1, 1, 1, 1, 1), npdt)
    gw = np.zeros_like(_np(weight, wdt)) if (need_w and sep is None) else dummy
    gsep = tuple(np.zeros(tuple(s.shape), npdt) for s in sep) if (need_w and sep is not None) else None
    goy = np.zeros((n, t, h, w), npdt) if need_off else dummy
    gox = np.zeros((n, t, h, w), npdt) if need_off else dummy
    if sep is None:
        args = (_np(weight, wdt), dummy, dummy, dummy)
    else:
        args = (dummy, *(_np(s, wdt) for s in sep))
    gargs = gsep if gsep is not None else (dummy, dummy, dummy)
    if n * h * w > 0:
        _deform_bwd(_nhwc(x, wdt), *args, _np(offset_y, wdt), _np(offset_x, wdt),
                    np.asarray(by, npdt), np.asarray(bx, npdt), rule, sep is not None,
                    _nhwc(grad, wdt), need_x, need_w, need_off, chunks, gxbuf, gw, *gargs, goy, gox)

    def back(a):
        return torch.from_numpy(a).to(x.dtype)

    gx = back(gxbuf.sum(0)).permute(0, 3, 1, 2).contiguous() if need_x else None
    return (
        gx,
        back(gw) if (need_w and sep is None) else None,
        tuple(back(s) for s in gsep) if gsep is not None else None,
        back(goy) if need_off else None,
        back(gox) if need_off else None,
    )


def sep_forward(x, vertical, horizontal, base: int) -> torch.Tensor:
    _check_cpu(x)
    wdt = _work_dtype(x.dtype)
    npdt = np.float64 if wdt == torch.float64 else np.float32
    n, c = x.shape[:2]
    h, w = vertical.shape[2:]
    out = np.empty((n, c, h, w), dtype=npdt)
    if n * h * w > 0:
        _sep_fwd(_nhwc(x, wdt), _np(vertical, wdt), _np(horizontal, wdt), int(base), out)
    return torch.from_numpy(out).to(x.dtype)


def sep_backward(x, vertical, horizontal, base: int, grad, needs):
    _check_cpu(x)
    need_x, need_k = needs
    wdt = _work_dtype(x.dtype)
    npdt = np.float64 if wdt == torch.float64 else np.float32
    n, c, hin, win = x.shape
    h = vertical.shape[2]
    chunks = _chunks(n * h)
    gxbuf = np.zeros((chunks, n, hin, win, c), npdt) if need_x else np.zeros((1, 1, 1, 1, 1), npdt)
    kv, kh = _np(vertical, wdt), _np(horizontal, wdt)
    gkv = np.zeros_like(kv) if need_k else _dummy(npdt)
    gkh = np.zeros_like(kh) if need_k else _dummy(npdt)
    if n * h * vertical.shape[3] > 0:
        _sep_bwd(_nhwc(x, wdt), kv, kh, int(base), _nhwc(grad, wdt), need_x, need_k, chunks, gxbuf, gkv, gkh)

    def back(a):
        return torch.from_numpy(a).to(x.dtype)

    gx = back(gxbuf.sum(0)).permute(0, 3, 1, 2).contiguous() if need_x else None
    return gx, (back(gkv) if need_k else None), (back(gkh) if need_k else None)
