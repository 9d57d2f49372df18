"""Naive per-pixel loop implementations of the three ops, written literally from the specs.

They are deliberately slow and independent of vfikit's code: float64 numpy, plain Python loops.
"""

from __future__ import annotations

import math

import numpy as np


def _clamp(v: int, size: int) -> int:
    return min(max(v, 0), size - 1)


def bilinear_clamped(img: np.ndarray, py: float, px: float) -> np.ndarray:
    """Clean rule: clamp the position into the image, then ordinary bilinear. img (C, H, W)."""
    h, w = img.shape[1:]
    py = min(max(py, 0.0), h - 1.0)
    px = min(max(px, 0.0), w - 1.0)
    y0, x0 = math.floor(py), math.floor(px)
    y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
    fy, fx = py - y0, px - x0
    return ((1 - fy) * (1 - fx) * img[:, y0, x0] + fy * (1 - fx) * img[:, y1, x0]
            + (1 - fy) * fx * img[:, y0, x1] + fy * fx * img[:, y1, x1])


def adacof_official_sample(img: np.ndarray, i: int, j: int, a_raw: float, b_raw: float) -> np.ndarray:
    """AdaCoF CUDA rule (spec 1.2): truncate toward zero, clamp each corner index separately."""
    h, w = img.shape[1:]
    a_int, b_int = math.trunc(a_raw), math.trunc(b_raw)
    a, b = a_raw - a_int, b_raw - b_int
    y0, x0 = i + a_int, j + b_int
    return ((1 - a) * (1 - b) * img[:, _clamp(y0, h), _clamp(x0, w)]
            + a * (1 - b) * img[:, _clamp(y0 + 1, h), _clamp(x0, w)]
            + (1 - a) * b * img[:, _clamp(y0, h), _clamp(x0 + 1, w)]
            + a * b * img[:, _clamp(y0 + 1, h), _clamp(x0 + 1, w)])


def dsepconv_official_sample(img: np.ndarray, py: float, px: float) -> np.ndarray:
    """DSepConv CUDA rule (spec b): floor of the raw position, weights from the clamped position."""
    h, w = img.shape[1:]
    pyc, pxc = min(max(py, 0.0), h - 1.0), min(max(px, 0.0), w - 1.0)
    top, bottom = _clamp(math.floor(py), h), _clamp(math.floor(py) + 1, h)
    left, right = _clamp(math.floor(px), w), _clamp(math.floor(px) + 1, w)
    w_left, w_right = 1 + (left - pxc), 1 - (right - pxc)
    w_top, w_bottom = 1 + (top - pyc), 1 - (bottom - pyc)
    return (img[:, top, left] * w_left * w_top + img[:, top, right] * w_right * w_top
            + img[:, bottom, left] * w_left * w_bottom + img[:, bottom, right] * w_right * w_bottom)


def adacof_loop(x, weight, offset_y, offset_x, dilation: int, convention: str) -> np.ndarray:
    n_img, c = x.shape[:2]
    _, taps, h, w = weight.shape
    f = math.isqrt(taps)
    out = np.zeros((n_img, c, h, w))
    for n in range(n_img):
        for i in range(h):
            for j in range(w):
                for k in range(f):
                    for l in range(f):
                        t = f * k + l
                        a, b = offset_y[n, t, i, j], offset_x[n, t, i, j]
                        if convention == "official":
                            s = adacof_official_sample(x[n], i + k * dilation, j + l * dilation, a, b)
                        else:
                            cy = i + (k - (f - 1) / 2) * dilation + a
                            cx = j + (l - (f - 1) / 2) * dilation + b
                            s = bilinear_clamped(x[n], cy, cx)
                        out[n, :, i, j] += weight[n, t, i, j] * s
    return out


def dsepconv_loop(x, vertical, horizontal, offset_y, offset_x, mask, convention: str) -> np.ndarray:
    n_img, c = x.shape[:2]
    _, taps, h, w = vertical.shape
    centre = (taps - 1) // 2
    out = np.zeros((n_img, c, h, w))
    for n in range(n_img):
        for y in range(h):
            for xx in range(w):
                for i in range(taps):
                    for j in range(taps):
                        k = taps * i + j
                        if convention == "official":
                            py = offset_y[n, k, y, xx] + y + i - centre + 1
                            px = offset_x[n, k, y, xx] + xx + j - centre + 1
                            s = dsepconv_official_sample(x[n], py, px)
                        else:
                            py = y + i - (taps - 1) / 2 + offset_y[n, k, y, xx]
                            px = xx + j - (taps - 1) / 2 + offset_x[n, k, y, xx]
                            s = bilinear_clamped(x[n], py, px)
                        out[n, :, y, xx] += s * vertical[n, i, y, xx] * horizontal[n, j, y, xx] * mask[n, k, y, xx]
    return out


def sepconv_loop(x, vertical, horizontal, convention: str) -> np.ndarray:
    n_img, c, hin, win = x.shape
    _, taps, h, w = vertical.shape
    shift = 0 if convention == "official" else -(taps - 1) // 2
    out = np.zeros((n_img, c, h, w))
    for n in range(n_img):
        for y in range(h):
            for xx in range(w):
                for i in range(taps):
                    for j in range(taps):
                        r, q = _clamp(y + i + shift, hin), _clamp(xx + j + shift, win)
                        out[n, :, y, xx] += x[n, :, r, q] * vertical[n, i, y, xx] * horizontal[n, j, y, xx]
    return out
