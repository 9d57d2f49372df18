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
agree. This module checks the inputs and hands them over as arrays; the compiled loop is
:func:`vfikit.ops.synthesis_kernels.guided_rows` (a module without torch, which ``vfikit.ops.warmup`` can
compile in a helper process while a job starts).
"""

from __future__ import annotations

import threading

import numpy as np
import torch

from vfikit.errors import VfikitError
from vfikit.ops._geometry import expand_taps, tap_bases
from vfikit.ops._threads import run_rows
from vfikit.ops.synthesis_kernels import guided_rows, new_scratch
from vfikit.ops.warmup import wait_background_compile
from vfikit.runtime import check_int


def upsample_index(out_size: int, in_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PyTorch's bilinear source rule (``align_corners=False``, scale ``in_size / out_size``) for one axis:
    the two source indices and the weight of the second, each (out_size,)."""
    scale = in_size / out_size
    src = np.maximum((np.arange(out_size, dtype=np.float64) + 0.5) * scale - 0.5, 0.0).astype(np.float32)
    i0 = src.astype(np.int64)
    i1 = np.minimum(i0 + 1, in_size - 1)
    return i0, i1, (src - i0).astype(np.float32)


_SCRATCH = threading.local()  # per thread: the scratch arrays of the last call, reused while shapes match


def _scratch(taps: int, lw: int, wd: int) -> tuple[np.ndarray, ...]:
    """This thread's scratch of ``guided_rows``, allocated once per (taps, low width, width)."""
    key = (taps, lw, wd)
    if getattr(_SCRATCH, "key", None) != key:
        _SCRATCH.key = key
        _SCRATCH.arrays = new_scratch(taps, lw, wd)
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
            guided_rows(lo, hi, frames, head_arrays, occ, flows, blend, by32, bx32, ry0, ry1, ly, cx0, cx1, lx,
                        lh == h, signed_taps, head_dtype == torch.bfloat16, *_scratch(taps, lw, w), out)

        wait_background_compile(head_dtype == torch.bfloat16)  # a helper compiling this loop: load it, do not compile
        run_rows(n * h, rows)
    return torch.from_numpy(out)
