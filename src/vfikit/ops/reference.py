"""Readable, fully vectorised reference implementations: THE oracle for every faster path.

They materialise all ``T`` sampled copies of the input (memory ``N*C*T*H*W``) and rely on autograd
for gradients, so they are meant for tests, ONNX export and tiny inputs, not for production sizes.
Arguments are already validated by :mod:`vfikit.ops.functional`.
"""

from __future__ import annotations

import torch

from vfikit.ops._sampling import axis_weights, position_dtype


def _bases(by: list[float], bx: list[float], h: int, w: int, dtype: torch.dtype, device: torch.device):
    t = len(by)
    rows = torch.arange(h, dtype=dtype, device=device).view(1, 1, h, 1)
    cols = torch.arange(w, dtype=dtype, device=device).view(1, 1, 1, w)
    rows = rows + torch.tensor(by, dtype=dtype, device=device).view(1, t, 1, 1)
    cols = cols + torch.tensor(bx, dtype=dtype, device=device).view(1, t, 1, 1)
    return rows, cols


def sample_taps(
    x: torch.Tensor, offset_y: torch.Tensor, offset_x: torch.Tensor, by: list[float], bx: list[float], rule: int
) -> torch.Tensor:
    """All taps sampled at once: (N, C, T, H, W) from x (N, C, Hin, Win) and offsets (N, T, H, W)."""
    n, c, hin, win = x.shape
    _, t, h, w = offset_y.shape
    pdt = position_dtype(x.dtype)
    rows, cols = _bases(by, bx, h, w, pdt, x.device)
    y0, y1, wy0, wy1, _ = axis_weights(offset_y.to(pdt), rows, hin, rule)
    x0, x1, wx0, wx1, _ = axis_weights(offset_x.to(pdt), cols, win, rule)
    flat = x.reshape(n, c, hin * win)

    def gather(yi: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
        idx = (yi * win + xi).reshape(n, 1, t * h * w).expand(n, c, t * h * w)
        return flat.gather(2, idx).view(n, c, t, h, w)

    def wt(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a * b).to(x.dtype).unsqueeze(1)

    return (
        gather(y0, x0) * wt(wy0, wx0)
        + gather(y1, x0) * wt(wy1, wx0)
        + gather(y0, x1) * wt(wy0, wx1)
        + gather(y1, x1) * wt(wy1, wx1)
    )


def adacof(x, weight, offset_y, offset_x, by, bx, rule):
    """out[n,c,i,j] = sum_t weight[n,t,i,j] * sample(x[n,c], tap t). Shapes as in ``vfikit.ops.adacof``."""
    return (sample_taps(x, offset_y, offset_x, by, bx, rule) * weight.unsqueeze(1)).sum(2)


def dsepconv(x, vertical, horizontal, mask, offset_y, offset_x, by, bx, rule):
    """Deformable separable convolution: tap t = n*i + j weighted by vertical[i] * horizontal[j] * mask[t]."""
    n_taps = vertical.shape[1]
    weight = (
        vertical.repeat_interleave(n_taps, dim=1) * horizontal.repeat(1, n_taps, 1, 1) * mask
    )
    return adacof(x, weight, offset_y, offset_x, by, bx, rule)


def sepconv(x, vertical, horizontal, base: int):
    """Separable convolution at integer taps ``i + base + k`` (indices clamped to the input)."""
    hin, win = x.shape[2:]
    taps, h, w = vertical.shape[1:]
    k = torch.arange(taps, device=x.device)
    rows = (torch.arange(h, device=x.device).view(1, h) + k.view(taps, 1) + base).clamp(0, hin - 1)
    cols = (torch.arange(w, device=x.device).view(1, w) + k.view(taps, 1) + base).clamp(0, win - 1)
    patches = x[:, :, rows[:, None, :, None], cols[None, :, None, :]]  # (N, C, n, n, H, W)
    kernel = vertical[:, :, None] * horizontal[:, None, :]  # (N, n, n, H, W)
    return (patches * kernel.unsqueeze(1)).sum((2, 3))
