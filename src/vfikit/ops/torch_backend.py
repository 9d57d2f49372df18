"""Memory-bounded PyTorch kernels: one tap at a time, nothing saved, everything recomputed in backward.

Works on any device and dtype (positions are computed in at least float32). Peak extra memory is a
few tensors of the output's size per tap, independent of the number of taps. These functions
compute values only; :mod:`vfikit.ops.functional` wraps them in autograd Functions.

Weight sources: ``weight`` (N, T, H, W) for AdaCoF, or ``sep = (vertical, horizontal, mask)`` for
DSepConv, where tap ``t = n*i + j`` has weight ``vertical[i] * horizontal[j] * mask[t]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vfikit.ops._sampling import axis_weights, position_dtype


@dataclass
class _Tap:
    idx: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]  # flat indices (N, 1, H*W)
    wts: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]  # corner weights (N, 1, H*W)
    wy: tuple[torch.Tensor, torch.Tensor]
    wx: tuple[torch.Tensor, torch.Tensor]
    act_y: torch.Tensor
    act_x: torch.Tensor


def _tap_geometry(x, offset_y, offset_x, t, by, bx, rule) -> _Tap:
    n, _, hin, win = x.shape
    h, w = offset_y.shape[2:]
    pdt = position_dtype(x.dtype)
    rows = torch.arange(h, dtype=pdt, device=x.device).view(1, h, 1) + by[t]
    cols = torch.arange(w, dtype=pdt, device=x.device).view(1, 1, w) + bx[t]
    y0, y1, wy0, wy1, ay = axis_weights(offset_y[:, t].to(pdt), rows, hin, rule)
    x0, x1, wx0, wx1, ax = axis_weights(offset_x[:, t].to(pdt), cols, win, rule)

    def flat(v: torch.Tensor) -> torch.Tensor:
        return v.reshape(n, 1, h * w)

    idx = tuple(flat(yi * win + xi) for yi, xi in ((y0, x0), (y1, x0), (y0, x1), (y1, x1)))
    wts = tuple(flat(a * b).to(x.dtype) for a, b in ((wy0, wx0), (wy1, wx0), (wy0, wx1), (wy1, wx1)))
    cast = x.dtype
    return _Tap(idx, wts, (flat(wy0).to(cast), flat(wy1).to(cast)), (flat(wx0).to(cast), flat(wx1).to(cast)),
                flat(ay).to(cast), flat(ax).to(cast))


def _corners(flat_x: torch.Tensor, tap: _Tap) -> list[torch.Tensor]:
    n, c, _ = flat_x.shape
    return [flat_x.gather(2, i.expand(n, c, i.shape[2])) for i in tap.idx]


def _tap_weight(t: int, weight, sep) -> torch.Tensor:
    if weight is not None:
        return weight[:, t]
    vertical, horizontal, mask = sep
    taps = vertical.shape[1]
    return vertical[:, t // taps] * horizontal[:, t % taps] * mask[:, t]


def deform_forward(x, weight, sep, offset_y, offset_x, by, bx, rule) -> torch.Tensor:
    """out (N, C, H, W) = sum_t w_t * sample_t(x)."""
    n, c, hin, win = x.shape
    t_count, h, w = offset_y.shape[1:]
    flat_x = x.reshape(n, c, hin * win)
    out = x.new_zeros(n, c, h * w)
    for t in range(t_count):
        tap = _tap_geometry(x, offset_y, offset_x, t, by, bx, rule)
        v = _corners(flat_x, tap)
        sample = v[0] * tap.wts[0] + v[1] * tap.wts[1] + v[2] * tap.wts[2] + v[3] * tap.wts[3]
        out += sample * _tap_weight(t, weight, sep).reshape(n, 1, h * w)
    return out.view(n, c, h, w)


def deform_backward(x, weight, sep, offset_y, offset_x, by, bx, rule, grad, needs):
    """Gradients of sum(out * grad). ``needs`` = (x, weight_or_sep, offsets) booleans.

    Returns ``(gx, gweight, (gvertical, ghorizontal, gmask), goffset_y, goffset_x)``, None where not needed.
    """
    need_x, need_w, need_off = needs
    n, c, hin, win = x.shape
    t_count, h, w = offset_y.shape[1:]
    flat_x = x.reshape(n, c, hin * win)
    g = grad.reshape(n, c, h * w)
    gx = torch.zeros_like(flat_x) if need_x else None
    gw = gsep = None
    if need_w and weight is not None:
        gw = torch.empty_like(weight)
    if need_w and sep is not None:
        gsep = tuple(torch.zeros_like(s) for s in sep)
    goy = torch.empty_like(offset_y) if need_off else None
    gox = torch.empty_like(offset_x) if need_off else None
    for t in range(t_count):
        tap = _tap_geometry(x, offset_y, offset_x, t, by, bx, rule)
        wt = _tap_weight(t, weight, sep).reshape(n, 1, h * w)
        v = _corners(flat_x, tap)
        if need_w:
            sample = v[0] * tap.wts[0] + v[1] * tap.wts[1] + v[2] * tap.wts[2] + v[3] * tap.wts[3]
            gwt = (g * sample).sum(1).view(n, h, w)
            if gw is not None:
                gw[:, t] = gwt
            else:
                vertical, horizontal, mask = sep
                taps = vertical.shape[1]
                i, j = t // taps, t % taps
                gsep[0][:, i] += gwt * horizontal[:, j] * mask[:, t]
                gsep[1][:, j] += gwt * vertical[:, i] * mask[:, t]
                gsep[2][:, t] = gwt * vertical[:, i] * horizontal[:, j]
        if need_off:
            wy0, wy1 = tap.wy
            wx0, wx1 = tap.wx
            dy = (g * (wx0 * (v[1] - v[0]) + wx1 * (v[3] - v[2]))).sum(1, keepdim=True)
            dx = (g * (wy0 * (v[2] - v[0]) + wy1 * (v[3] - v[1]))).sum(1, keepdim=True)
            goy[:, t] = (wt * tap.act_y * dy).view(n, h, w)
            gox[:, t] = (wt * tap.act_x * dx).view(n, h, w)
        if need_x:
            gwt_x = g * wt
            for idx, cw in zip(tap.idx, tap.wts):
                gx.scatter_add_(2, idx.expand(n, c, h * w), gwt_x * cw)
    if gx is not None:
        gx = gx.view(n, c, hin, win)
    return gx, gw, gsep, goy, gox


def _shifted(x: torch.Tensor, base: int, i: int, j: int, h: int, w: int) -> torch.Tensor:
    """x rows i+base .. i+base+h-1 and columns j+base .. j+base+w-1, indices clamped."""
    hin, win = x.shape[2:]
    r0, c0 = i + base, j + base
    if r0 >= 0 and r0 + h <= hin and c0 >= 0 and c0 + w <= win:
        return x[:, :, r0:r0 + h, c0:c0 + w]
    rows = torch.arange(r0, r0 + h, device=x.device).clamp(0, hin - 1)
    cols = torch.arange(c0, c0 + w, device=x.device).clamp(0, win - 1)
    return x.index_select(2, rows).index_select(3, cols)


def sep_forward(x, vertical, horizontal, base: int) -> torch.Tensor:
    n, c = x.shape[:2]
    taps, h, w = vertical.shape[1:]
    out = x.new_zeros(n, c, h, w)
    for i in range(taps):
        inner = x.new_zeros(n, c, h, w)
        for j in range(taps):
            inner += _shifted(x, base, i, j, h, w) * horizontal[:, j:j + 1]
        out += inner * vertical[:, i:i + 1]
    return out


def sep_backward(x, vertical, horizontal, base: int, grad, needs):
    """Returns (gx, gvertical, ghorizontal) of sum(out * grad); ``needs`` = (x, kernels)."""
    need_x, need_k = needs
    taps, h, w = vertical.shape[1:]
    hin, win = x.shape[2:]
    gv = torch.zeros_like(vertical) if need_k else None
    gh = torch.zeros_like(horizontal) if need_k else None
    gx = None
    if need_x:
        # Accumulate into a replicate-padded canvas, then fold the clamped border back.
        lo = max(0, -base)
        hi_r = max(0, h - 1 + base + taps - 1 - (hin - 1))
        hi_c = max(0, w - 1 + base + taps - 1 - (win - 1))
        canvas = x.new_zeros(x.shape[0], x.shape[1], hin + lo + hi_r, win + lo + hi_c)
    for i in range(taps):
        for j in range(taps):
            if need_k:
                d = (grad * _shifted(x, base, i, j, h, w)).sum(1)
                gv[:, i] += d * horizontal[:, j]
                gh[:, j] += d * vertical[:, i]
            if need_x:
                r0, c0 = i + base + lo, j + base + lo
                canvas[:, :, r0:r0 + h, c0:c0 + w] += grad * (vertical[:, i:i + 1] * horizontal[:, j:j + 1])
    if need_x:
        gx = _fold_replicate(canvas, lo, hin, win)
    return gx, gv, gh


def _fold_replicate(canvas: torch.Tensor, lo: int, hin: int, win: int) -> torch.Tensor:
    """Adjoint of replicate padding: add the margins of ``canvas`` onto the border rows/columns."""
    rows = canvas[:, :, lo:lo + hin].clone()
    rows[:, :, 0] += canvas[:, :, :lo].sum(2)
    rows[:, :, -1] += canvas[:, :, lo + hin:].sum(2)
    out = rows[:, :, :, lo:lo + win].clone()
    out[:, :, :, 0] += rows[:, :, :, :lo].sum(3)
    out[:, :, :, -1] += rows[:, :, :, lo + win:].sum(3)
    return out
