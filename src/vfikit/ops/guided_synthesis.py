"""Fused CPU synthesis of the flow-guided AdaCoF at inference (numba): one pass instead of eight.

The reference path of ``guided_adacof`` (``GuidedAdaCoF._synthesise`` and the blend in ``forward``)
upsamples every head output to the frame size when the network runs at reduced resolution
(201 channels at 640x480: ~250 MB written and read again), adds the guide's flow to 2 x 25 offset
maps, samples each frame with :func:`vfikit.ops.adacof` and blends the two predictions with the
occlusion map. :func:`guided_adacof_synthesis` does all of that per output row in one compiled loop,
over chunks of rows on several threads: the heads' low-resolution rows are upsampled along the row once
per chunk into a two-row cache and each output row lerps between its two cached rows (PyTorch's
``align_corners=False`` rule; at the network's full size the rows are read as they are), the flow is
added, each frame is sampled with the clean convention's rule
(position clamped to the image, then bilinear) in float32 over planar channels, and the two predictions
are blended. The heads are read where the network left them: channels-last or NCHW, float32 or the
bits of bfloat16 (the bf16 network's output needs no conversion pass). Inference only (no gradients);
its reference twin is the model's unfused path, and ``tests/ops/test_guided_synthesis.py`` checks that they
agree.
"""

from __future__ import annotations

import threading

import numpy as np
import torch
from numba import njit

from vfikit.errors import VfikitError
from vfikit.ops._geometry import expand_taps, tap_bases
from vfikit.ops._threads import run_rows
from vfikit.runtime import check_int


def upsample_index(out_size: int, in_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PyTorch's bilinear source rule (``align_corners=False``, scale ``in_size / out_size``) for one axis:
    the two source indices and the weight of the second, each (out_size,)."""
    scale = in_size / out_size
    src = np.maximum((np.arange(out_size, dtype=np.float64) + 0.5) * scale - 0.5, 0.0).astype(np.float32)
    i0 = src.astype(np.int64)
    i1 = np.minimum(i0 + 1, in_size - 1)
    return i0, i1, (src - i0).astype(np.float32)


_FLAGS = {"contract"}  # fused multiply-add only: no reassociation, NaN and infinity rules kept
# Every kernel below is a plain ``nogil`` function (no ``parallel=True``, no IR-level inlining): each compiles
# in about a second on first use, where the former single parallel kernel took 15-40 s. Rows are spread
# over threads by :func:`vfikit.ops._threads.run_rows` instead.


@njit(nogil=True, cache=True, fastmath=_FLAGS)
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


@njit(nogil=True, cache=True, fastmath=_FLAGS)
def _widen(low, cx0, cx1, lx, dst):
    """dst[k, j] (K, W) = low[k] (K, w) upsampled along the row: (1 - lx_j) low[k, cx0_j] + lx_j low[k, cx1_j]."""
    one = np.float32(1.0)
    for k in range(dst.shape[0]):
        src, row = low[k], dst[k]
        for j in range(row.shape[0]):
            row[j] = (one - lx[j]) * src[cx0[j]] + lx[j] * src[cx1[j]]


@njit(nogil=True, cache=True, fastmath=_FLAGS)
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


@njit(nogil=True, cache=True, fastmath=_FLAGS)
def _lerp(top, bottom, ly, out):
    """out = (1 - ly) top + ly bottom, (K, W) each: the upsampling between the two cached rows."""
    hy = np.float32(1.0) - ly
    for k in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[k, j] = hy * top[k, j] + ly * bottom[k, j]


@njit(nogil=True, cache=True, fastmath=_FLAGS)
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


@njit(nogil=True, cache=True, fastmath=_FLAGS)
def _clamp_position(p, hi):
    """The clean rule's position: NaN and anything below 0 -> 0, above ``hi`` -> ``hi``."""
    if not p > 0.0:
        return np.float32(0.0)
    if p > hi:
        return hi
    return p


@njit(nogil=True, cache=True, fastmath=_FLAGS)
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


@njit(nogil=True, cache=True, fastmath=_FLAGS)
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
def _guided_rows(lo, hi, frames, heads, occ, flows, b0, by, bx, ry0, ry1, lys, cx0, cx1, lxs, direct, signed,
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


_SCRATCH = threading.local()  # per thread: the scratch arrays of the last call, reused while shapes match


def _scratch(taps: int, lw: int, wd: int) -> tuple[np.ndarray, ...]:
    """This thread's scratch of ``_guided_rows``, allocated once per (taps, low width, width)."""
    key = (taps, lw, wd)
    if getattr(_SCRATCH, "key", None) != key:
        f32 = np.float32
        _SCRATCH.key = key
        _SCRATCH.arrays = (np.empty((2, 6, taps, wd), f32), np.empty((2, 1, wd), f32), np.empty((taps, lw), f32),
                           np.empty((1, lw), f32), np.empty((3, taps, wd), f32), np.empty((2, 3, wd), f32),
                           np.empty(wd, f32))
    return _SCRATCH.arrays


def _one_layout(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """The arrays as one tuple the compiled loop can index: all in the same layout (as a network leaves them:
    they are returned as they are) or, for a mix of layouts, all copied to C order."""
    if len({(a.flags.c_contiguous, a.flags.f_contiguous) for a in arrays}) > 1:
        return tuple(np.ascontiguousarray(a) for a in arrays)
    return arrays


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
    check_int(dilation, "guided_adacof_synthesis: dilation", low=1)
    by, bx = expand_taps(tap_bases(size, dilation, "clean", "adacof"), size)
    ry0, ry1, ly = upsample_index(h, lh)
    if lh == h:  # heads at the frames' size: each output row reads its own row only (ly is 0)
        ry1 = ry0
    cx0, cx1, lx = upsample_index(w, lw)

    def arr(t: torch.Tensor) -> np.ndarray:  # a view in the tensor's own layout (NCHW or channels-last)
        t = t.detach()
        return t.view(torch.int16).numpy() if t.dtype == torch.bfloat16 else t.numpy()  # bfloat16: its bits

    out = np.empty((n, c, h, w), np.float32)
    if out.size:
        frames, flows = _one_layout(arr(frame0), arr(frame1)), _one_layout(arr(flow0), arr(flow1))
        head_arrays, occ = _one_layout(*(arr(v) for v in heads[:6])), arr(occlusion)
        by32, bx32 = np.asarray(by, np.float32), np.asarray(bx, np.float32)
        blend = arr(blend0)

        def rows(lo: int, hi: int) -> None:
            _guided_rows(lo, hi, frames, head_arrays, occ, flows, blend, by32, bx32, ry0, ry1, ly, cx0, cx1, lx,
                         lh == h, signed_taps, head_dtype == torch.bfloat16, *_scratch(taps, lw, w), out)

        run_rows(n * h, rows)
    return torch.from_numpy(out)
