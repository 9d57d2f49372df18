"""Fused CPU synthesis of the flow-guided AdaCoF at inference (numba): one pass instead of eight.

The reference path of ``guided_adacof`` (``GuidedAdaCoF._synthesise`` and the blend in ``forward``)
upsamples every head output to the frame size when the network runs at reduced resolution
(201 channels at 640x480: ~250 MB written and read again), adds the guide's flow to 2 x 25 offset
maps, samples each frame with :func:`vfikit.ops.adacof` and blends the two predictions with the
occlusion map. :func:`guided_adacof_synthesis` does all of that per output row in one compiled loop:
the row's tap weights and offsets are bilinearly upsampled into a row buffer (PyTorch's
``align_corners=False`` rule), the flow is added, each frame is sampled with the clean convention's rule
(position clamped to the image, then bilinear) in float32 over planar channels, and the two predictions
are blended. The heads are read where the network left them: channels-last or NCHW, float32 or the
bits of bfloat16 (the bf16 network's output needs no conversion pass). Inference only (no gradients);
its reference twin is the model's unfused path, and ``tests/ops/test_guided_synthesis.py`` checks that they
agree.
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit, prange

from vfikit.errors import VfikitError
from vfikit.ops._geometry import expand_taps, tap_bases


def upsample_index(out_size: int, in_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PyTorch's bilinear source rule (``align_corners=False``, scale ``in_size / out_size``) for one axis:
    the two source indices and the weight of the second, each (out_size,)."""
    scale = in_size / out_size
    src = np.maximum((np.arange(out_size, dtype=np.float64) + 0.5) * scale - 0.5, 0.0).astype(np.float32)
    i0 = src.astype(np.int64)
    i1 = np.minimum(i0 + 1, in_size - 1)
    return i0, i1, (src - i0).astype(np.float32)


_FLAGS = {"contract"}  # fused multiply-add only: no reassociation, NaN and infinity rules kept


@njit(inline="always")
def _load_row(a, n, row, bf16_bits, out):
    """out[k, j] = a[n, k, row, j] as float32: ``a`` is float32, or (``bf16_bits``) the int16 bits of
    bfloat16 values (a bfloat16 is the upper half of the float32 with the same value)."""
    bits = out.view(np.uint32)
    for k in range(out.shape[0]):
        for j in range(out.shape[1]):
            if bf16_bits:
                bits[k, j] = np.uint32(np.uint16(a[n, k, row, j])) << np.uint32(16)
            else:
                out[k, j] = a[n, k, row, j]


@njit(inline="always")
def _interp_cols(top, bottom, ly, cx0, cx1, lx, out):
    """out[k, j]: bilinear between low-resolution rows ``top`` and ``bottom`` (weight ``ly`` on bottom) at
    columns (cx0, cx1, lx)."""
    for k in range(out.shape[0]):
        for j in range(out.shape[1]):
            hx0 = 1.0 - lx[j]
            out[k, j] = ((1.0 - ly) * (hx0 * top[k, cx0[j]] + lx[j] * top[k, cx1[j]])
                         + ly * (hx0 * bottom[k, cx0[j]] + lx[j] * bottom[k, cx1[j]]))


@njit(inline="always")
def _head_rows(a, n, i, y0, y1, ly, cx0, cx1, lx, direct, bf16_bits, top, bottom, out):
    """out (K, W): head ``a`` (N, K, h, w) at full-resolution row i (upsampled unless ``direct``)."""
    if direct:
        _load_row(a, n, i, bf16_bits, out)
    else:
        _load_row(a, n, y0, bf16_bits, top)
        _load_row(a, n, y1, bf16_bits, bottom)
        _interp_cols(top, bottom, ly, cx0, cx1, lx, out)


@njit(inline="always")
def _signed_taps(buf):
    """buf[:, j] <- buf[:, j] - mean(buf[:, j]) + onehot(centre), for every column j (in place)."""
    taps, wd = buf.shape
    mean = np.zeros(wd, dtype=np.float32)
    for t in range(taps):
        for j in range(wd):
            mean[j] += buf[t, j]
    scale = np.float32(1.0 / taps)
    for t in range(taps):
        for j in range(wd):
            buf[t, j] -= mean[j] * scale
    for j in range(wd):
        buf[taps // 2, j] += 1


@njit(inline="always")
def _clamp_position(p, hi):
    """The clean rule's position: NaN and anything below 0 -> 0, above ``hi`` -> ``hi``."""
    if not p > 0.0:
        return np.float32(0.0)
    if p > hi:
        return hi
    return p


@njit(inline="always")
def _sample_row(x, n, i, w, oy, ox, fy, fx, by, bx, acc):
    """acc[c, j] += sum_t w[t, j] * bilinear(x[n, c], i + by_t + fy_j + oy[t, j], j + bx_t + fx_j + ox[t, j])."""
    h, wd = x.shape[2], x.shape[3]
    hy, hx, one = np.float32(h - 1), np.float32(wd - 1), np.float32(1.0)  # float32 throughout
    p0, p1, p2 = x[n, 0], x[n, 1], x[n, 2]
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


@njit(parallel=True, cache=True, fastmath=_FLAGS)
def _guided_adacof_fwd(x0, x1, w0, oy0, ox0, w1, oy1, ox1, occ, f0, f1, b0, by, bx,
                       ry0, ry1, lys, cx0, cx1, lxs, direct, signed, bf16_bits, out):
    n_img, _, h, wd = x0.shape
    taps, lw = w0.shape[1], w0.shape[3]
    for r in prange(n_img * h):
        n = r // h
        i = r - n * h
        acc0 = np.zeros((3, wd), dtype=np.float32)
        acc1 = np.zeros((3, wd), dtype=np.float32)
        occ_row = np.empty((1, wd), dtype=np.float32)
        bw = np.empty((taps, wd), dtype=np.float32)  # contiguous rows: the sampling loop vectorises
        boy = np.empty((taps, wd), dtype=np.float32)
        box = np.empty((taps, wd), dtype=np.float32)
        top = np.empty((taps, lw), dtype=np.float32)  # the two low-resolution rows of an upsampled head
        bottom = np.empty((taps, lw), dtype=np.float32)
        top1 = np.empty((1, lw), dtype=np.float32)
        bottom1 = np.empty((1, lw), dtype=np.float32)
        y0, y1, ly = ry0[i], ry1[i], lys[i]
        for x, w, oy, ox, f, acc in ((x0, w0, oy0, ox0, f0, acc0), (x1, w1, oy1, ox1, f1, acc1)):
            _head_rows(w, n, i, y0, y1, ly, cx0, cx1, lxs, direct, bf16_bits, top, bottom, bw)
            _head_rows(oy, n, i, y0, y1, ly, cx0, cx1, lxs, direct, bf16_bits, top, bottom, boy)
            _head_rows(ox, n, i, y0, y1, ly, cx0, cx1, lxs, direct, bf16_bits, top, bottom, box)
            if signed:  # raw head outputs -> signed taps summing to one: r - mean(r) + onehot(centre)
                _signed_taps(bw)
            _sample_row(x, n, i, bw, boy, box, f[n, 1, i], f[n, 0, i], by, bx, acc)
        _head_rows(occ, n, i, y0, y1, ly, cx0, cx1, lxs, direct, bf16_bits, top1, bottom1, occ_row)
        for j in range(wd):
            b = b0[n, 0, i, j]
            v = 1.0 / (1.0 + np.exp(-(np.log(b / (1.0 - b)) + occ_row[0, j])))
            for c in range(3):
                out[n, c, i, j] = v * acc0[c, j] + (1.0 - v) * acc1[c, j]


def guided_adacof_synthesis(frame0: torch.Tensor, frame1: torch.Tensor,
                            kernel0: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
                            kernel1: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
                            occlusion: torch.Tensor, flow0: torch.Tensor, flow1: torch.Tensor,
                            blend0: torch.Tensor, dilation: int = 1, signed_taps: bool = False) -> torch.Tensor:
    """The guided AdaCoF frame, fused (float32, CPU, no gradients).

    ``frame = V * adacof(frame0, W0, F0_y + up(oy0), F0_x + up(ox0)) + (1 - V) * adacof(frame1, ...)`` with
    ``V = sigmoid(logit(blend0) + up(occlusion))`` and ``W = up(weight)``; ``up`` is bilinear upsampling
    (``align_corners=False``) from the heads' resolution to the frames' (identity when equal).

    Args:
        frame0, frame1: (B, C, H, W).
        kernel0, kernel1: (weight, offset_y, offset_x), each (B, F*F, h, w): tap weights and offset
            residuals at the network's resolution (h = H / s, w = W / s), in any memory layout
            (channels-last heads are read in place), float32 or bfloat16 (read as they are, computed in
            float32: a bfloat16 network's heads need no conversion pass).
        occlusion: (B, 1, h, w) blend logit residual (the heads' dtype).
        flow0, flow1: (B, 2, H, W) the guide's backward flows (x, y) from t to each frame.
        blend0: (B, 1, H, W) the guide's blend weight of frame0, in (0, 1).
        dilation: tap spacing.
        signed_taps: the weights are raw head outputs ``r``, made into ``guided_adacof``'s signed taps
            ``r - mean(r) + onehot(centre)`` here (after upsampling, which commutes with it); False: the
            weights are used as they are.
    Returns:
        (B, C, H, W).
    """
    n, c, h, w = frame0.shape
    if c != 3:
        raise VfikitError(f"guided_adacof_synthesis: frames need 3 channels, got {c}")
    taps, lh, lw = kernel0[0].shape[1:]
    size = round(taps ** 0.5)
    if size * size != taps or size % 2 == 0:
        raise VfikitError(f"guided_adacof_synthesis: {taps} weight channels are not an odd square")
    for name, tensor in (("frame0", frame0), ("frame1", frame1), ("flow0", flow0), ("flow1", flow1),
                         ("blend0", blend0)):
        if tensor.device.type != "cpu" or tensor.dtype != torch.float32:
            raise VfikitError(f"guided_adacof_synthesis: {name} must be float32 on CPU, got {tensor.dtype} "
                              f"on {tensor.device}")
    heads = (*kernel0, *kernel1, occlusion)
    head_dtype = heads[0].dtype
    if head_dtype not in (torch.float32, torch.bfloat16) or any(
            v.dtype != head_dtype or v.device.type != "cpu" for v in heads):
        raise VfikitError("guided_adacof_synthesis: the kernels and the occlusion must all be float32 or all "
                          f"bfloat16, on CPU; got {sorted({str(v.dtype) for v in heads})}")
    if h % lh or w % lw or h // lh != w // lw:
        raise VfikitError(f"guided_adacof_synthesis: heads {lh}x{lw} do not divide frames {h}x{w} evenly")
    # the compiled loop does not check bounds: every shape is checked here
    expected = {"frame1": (n, 3, h, w), "flow0": (n, 2, h, w), "flow1": (n, 2, h, w), "blend0": (n, 1, h, w),
                "occlusion": (n, 1, lh, lw), **{f"kernel{k // 3}[{k % 3}]": (n, taps, lh, lw) for k in range(6)}}
    for (name, shape), tensor in zip(expected.items(), (frame1, flow0, flow1, blend0, occlusion, *heads[:6])):
        if tuple(tensor.shape) != shape:
            raise VfikitError(f"guided_adacof_synthesis: {name} has shape {tuple(tensor.shape)}, expected {shape}")
    if isinstance(dilation, bool) or not isinstance(dilation, int) or dilation < 1:
        raise VfikitError(f"guided_adacof_synthesis: dilation must be an integer >= 1, got {dilation!r}")
    by, bx = expand_taps(tap_bases(size, dilation, "clean", "adacof"), size)
    ry0, ry1, ly = upsample_index(h, lh)
    cx0, cx1, lx = upsample_index(w, lw)

    def arr(t: torch.Tensor) -> np.ndarray:  # a view in the tensor's own layout (NCHW or channels-last)
        t = t.detach()
        return t.view(torch.int16).numpy() if t.dtype == torch.bfloat16 else t.numpy()  # bfloat16: its bits

    out = np.empty((n, c, h, w), np.float32)
    if out.size:
        _guided_adacof_fwd(arr(frame0), arr(frame1), *(arr(v) for v in kernel0), *(arr(v) for v in kernel1),
                           arr(occlusion), arr(flow0), arr(flow1), arr(blend0), np.asarray(by, np.float32),
                           np.asarray(bx, np.float32), ry0, ry1, ly, cx0, cx1, lx, lh == h, signed_taps,
                           head_dtype == torch.bfloat16, out)
    return torch.from_numpy(out)
