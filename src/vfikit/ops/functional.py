"""Public sampling operators: ``sepconv``, ``dsepconv``, ``adacof``.

Every op takes an explicit ``convention`` (``"official"`` or ``"clean"``, see docs/ops.md) and an
optional ``backend``:

* ``"reference"``: vectorised PyTorch + autograd; materialises every tap (the test oracle).
* ``"torch"``: one tap at a time, custom backward that recomputes instead of saving; any device.
* ``"numba"``: compiled parallel CPU kernels (default on CPU).
* ``"auto"`` (default): ``numba`` on CPU, ``torch`` elsewhere. The environment variable
  ``VFIKIT_OPS_BACKEND`` overrides the default. Asking for a backend that cannot run on the
  given device is an error, never a silent fallback.

Gradients are the true derivatives of the forward for every floating input (image included), in
both conventions. The official CUDA backward differed: it returned no image gradient and, for
AdaCoF, summed weight/offset gradients over channels 0-2 only (docs/ops.md shows how to emulate it).

Under autocast the ops run in float32 (fp16 cannot represent pixel positions exactly).
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from types import ModuleType

import torch
from torch.autograd.function import once_differentiable
from torch.nn import functional as F

from vfikit.errors import VfikitError
from vfikit.ops import reference, torch_backend
from vfikit.ops._geometry import (
    RULE_ADACOF,
    RULE_CLEAN,
    RULE_DSEP,
    check_convention,
    check_tensors,
    expand_taps,
    expect_shape,
    input_size,
    tap_bases,
    taps_from_channels,
)
from vfikit.runtime import check_int

BACKENDS = ("auto", "reference", "torch", "numba")
ENV_BACKEND = "VFIKIT_OPS_BACKEND"


def _numba_module() -> ModuleType:
    from vfikit.ops import numba_cpu  # compiled lazily: importing numba costs ~0.5 s

    return numba_cpu


def resolve_backend(backend: str | None, device: torch.device) -> str:
    """The backend that will run for ``device`` (explicit argument, then env var, then auto)."""
    name = backend if backend is not None else os.environ.get(ENV_BACKEND, "auto")
    if name not in BACKENDS:
        raise VfikitError(f"unknown ops backend {name!r}; choose one of {BACKENDS}")
    if name == "auto":
        return "numba" if device.type == "cpu" else "torch"
    if name == "numba" and device.type != "cpu":
        raise VfikitError(f"the 'numba' backend runs on CPU only, but the tensors are on {device}")
    return name


def _kernels(name: str) -> ModuleType:
    return _numba_module() if name == "numba" else torch_backend


def _autocast_to_fp32(tensors: list) -> tuple[list, bool]:
    """Under autocast, run the op in float32 (inputs may arrive in mixed precisions)."""
    first = tensors[0]
    if not isinstance(first, torch.Tensor):
        return tensors, False
    dev = first.device.type
    if dev in ("cuda", "cpu") and torch.is_autocast_enabled(dev):
        return [t.float() if isinstance(t, torch.Tensor) and t.is_floating_point() else t for t in tensors], True
    return tensors, False


class _DeformFn(torch.autograd.Function):
    """AdaCoF (``weight``) or DSepConv (``vertical, horizontal, mask``) through a fast kernel module."""

    @staticmethod
    def forward(ctx, x, weight, vertical, horizontal, mask, offset_y, offset_x, by, bx, rule, kernels):
        sep = None if weight is not None else (vertical, horizontal, mask)
        ctx.save_for_backward(x, weight, vertical, horizontal, mask, offset_y, offset_x)
        ctx.meta = (by, bx, rule, kernels)
        return kernels.deform_forward(x, weight, sep, offset_y, offset_x, by, bx, rule)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        x, weight, vertical, horizontal, mask, offset_y, offset_x = ctx.saved_tensors
        by, bx, rule, kernels = ctx.meta
        sep = None if weight is not None else (vertical, horizontal, mask)
        need = ctx.needs_input_grad
        needs = (need[0], any(need[1:5]), need[5] or need[6])
        gx, gw, gsep, goy, gox = kernels.deform_backward(
            x, weight, sep, offset_y, offset_x, by, bx, rule, grad.contiguous(), needs
        )
        gv = gh = gm = None
        if gsep is not None:
            gv, gh, gm = gsep
        return gx, gw, gv, gh, gm, goy, gox, None, None, None, None


class _SepFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, vertical, horizontal, base, kernels):
        ctx.save_for_backward(x, vertical, horizontal)
        ctx.meta = (base, kernels)
        return kernels.sep_forward(x, vertical, horizontal, base)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        x, vertical, horizontal = ctx.saved_tensors
        base, kernels = ctx.meta
        need = ctx.needs_input_grad
        gx, gv, gh = kernels.sep_backward(x, vertical, horizontal, base, grad.contiguous(),
                                          (need[0], need[1] or need[2]))
        return gx, gv, gh, None, None


def adacof(
    input: torch.Tensor,
    weight: torch.Tensor,
    offset_y: torch.Tensor,
    offset_x: torch.Tensor,
    dilation: int = 1,
    *,
    convention: str,
    backend: str | None = None,
) -> torch.Tensor:
    """Adaptive collaboration of flows: each output pixel is a weighted sum of F*F deformed samples.

    ``out[n,c,i,j] = sum_t weight[n,t,i,j] * sample(input[n,c], row_t + offset_y[n,t,i,j],
    col_t + offset_x[n,t,i,j])`` with tap ``t = F*k + l`` (k = row tap, l = column tap).

    Args:
        input: (N, C, Hin, Win). ``"official"``: padded by the caller, Hin = H + (F-1)*dilation
            (row_t = i + k*dilation). ``"clean"``: Hin = H, taps centred
            (row_t = i + (k - (F-1)/2)*dilation).
        weight: (N, F*F, H, W) tap weights (AdaCoF's networks softmax them; the guided models' are signed).
        offset_y: (N, F*F, H, W) row (vertical) displacement; the official code's ``alpha``.
        offset_x: (N, F*F, H, W) column (horizontal) displacement; the official ``beta``.
        dilation: tap spacing D >= 1.
        convention: ``"official"`` (truncated offsets, per-corner index clamping, as the authors'
            CUDA kernel) or ``"clean"`` (position clamped to the image, ordinary bilinear).
        backend: see module docstring.
    Returns:
        (N, C, H, W).

    Example:
        >>> x = torch.rand(1, 3, 8, 8)
        >>> w = torch.zeros(1, 1, 8, 8) + 1.0
        >>> y = adacof(x, w, torch.zeros_like(w), torch.ones_like(w), convention="clean")
        >>> torch.allclose(y[..., :-1], x[..., 1:])  # positive offset_x reads the pixel to the right
        True
    """
    op = "adacof"
    check_convention(convention)
    (input, weight, offset_y, offset_x), cast = _autocast_to_fp32([input, weight, offset_y, offset_x])
    check_tensors(op, {"input": input, "weight": weight, "offset_y": offset_y, "offset_x": offset_x})
    check_int(dilation, "adacof: dilation", low=1)
    n, t, h, w = weight.shape
    f = taps_from_channels(op, "weight", t)
    expect_shape(op, "offset_y", offset_y, (n, t, h, w), "same as weight")
    expect_shape(op, "offset_x", offset_x, (n, t, h, w), "same as weight")
    hin, win = input_size(convention, h, w, (f - 1) * dilation)
    expect_shape(op, "input", input, (n, input.shape[1], hin, win),
                 f"{convention} convention with F={f}, dilation={dilation}")
    by, bx = expand_taps(tap_bases(f, dilation, convention, op), f)
    rule = RULE_ADACOF if convention == "official" else RULE_CLEAN
    name = resolve_backend(backend, input.device)
    args = [input, weight, offset_y, offset_x]
    with torch.autocast(input.device.type, enabled=False) if cast else nullcontext():
        if name == "reference":
            return reference.adacof(*args, by, bx, rule)
        x, wt, oy, ox = (a.contiguous() for a in args)
        return _DeformFn.apply(x, wt, None, None, None, oy, ox, by, bx, rule, _kernels(name))


def dsepconv(
    input: torch.Tensor,
    vertical: torch.Tensor,
    horizontal: torch.Tensor,
    offset_y: torch.Tensor,
    offset_x: torch.Tensor,
    mask: torch.Tensor,
    *,
    convention: str,
    backend: str | None = None,
) -> torch.Tensor:
    """Deformable separable convolution (DSepConv, AAAI 2020).

    ``out[n,c,i,j] = sum_{k,l} vertical[n,k,i,j] * horizontal[n,l,i,j] * mask[n,t,i,j] *
    sample(input[n,c], row_k + offset_y[n,t,i,j], col_l + offset_x[n,t,i,j])``, ``t = n*k + l``.

    Args:
        input: (N, C, Hin, Win). ``"official"``: padded by the caller, Hin = H + n - 1, and tap k
            reads row ``i + k - (n-1)//2 + 1`` (the authors' uncentred grid) with their border rule
            (a sample outside the input counts the border pixel twice per axis). ``"clean"``:
            Hin = H, row ``i + k - (n-1)/2``, position clamped, ordinary bilinear.
        vertical, horizontal: (N, n, H, W) 1-D kernels.
        offset_y: (N, n*n, H, W) row displacement (the official op's 4th argument, named offset_x
            there). offset_x: (N, n*n, H, W) column displacement (official 5th argument).
        mask: (N, n*n, H, W) modulation.
    Returns:
        (N, C, H, W). With zero offsets and unit masks the clean convention equals ``sepconv``.
    """
    op = "dsepconv"
    check_convention(convention)
    (input, vertical, horizontal, offset_y, offset_x, mask), cast = _autocast_to_fp32(
        [input, vertical, horizontal, offset_y, offset_x, mask]
    )
    check_tensors(op, {"input": input, "vertical": vertical, "horizontal": horizontal,
                       "offset_y": offset_y, "offset_x": offset_x, "mask": mask})
    n, taps, h, w = vertical.shape
    expect_shape(op, "horizontal", horizontal, (n, taps, h, w), "same as vertical")
    for name_, t_ in (("offset_y", offset_y), ("offset_x", offset_x), ("mask", mask)):
        expect_shape(op, name_, t_, (n, taps * taps, h, w), f"n*n = {taps * taps} channels for n={taps}")
    hin, win = input_size(convention, h, w, taps - 1)
    expect_shape(op, "input", input, (n, input.shape[1], hin, win), f"{convention} convention with n={taps}")
    by, bx = expand_taps(tap_bases(taps, 1, convention, op), taps)
    rule = RULE_DSEP if convention == "official" else RULE_CLEAN
    name = resolve_backend(backend, input.device)
    args = [input, vertical, horizontal, mask, offset_y, offset_x]
    with torch.autocast(input.device.type, enabled=False) if cast else nullcontext():
        if name == "reference":
            return reference.dsepconv(*args, by, bx, rule)
        x, kv, kh, m, oy, ox = (a.contiguous() for a in args)
        return _DeformFn.apply(x, None, kv, kh, m, oy, ox, by, bx, rule, _kernels(name))


def sepconv(
    input: torch.Tensor,
    vertical: torch.Tensor,
    horizontal: torch.Tensor,
    *,
    convention: str,
    backend: str | None = None,
) -> torch.Tensor:
    """Adaptive separable convolution (SepConv, ICCV 2017).

    ``out[n,c,i,j] = sum_{k,l} input[n,c,row_k,col_l] * vertical[n,k,i,j] * horizontal[n,l,i,j]``.

    Args:
        input: (N, C, Hin, Win). ``"official"``: padded by the caller, Hin = H + n - 1,
            ``row_k = i + k`` (no kernel flip). ``"clean"``: Hin = H, n odd, taps centred
            (``row_k = i + k - (n-1)/2``) and clamped to the image (replicate border).
        vertical, horizontal: (N, n, H, W).
    Returns:
        (N, C, H, W).
    """
    op = "sepconv"
    check_convention(convention)
    (input, vertical, horizontal), cast = _autocast_to_fp32([input, vertical, horizontal])
    check_tensors(op, {"input": input, "vertical": vertical, "horizontal": horizontal})
    n, taps, h, w = vertical.shape
    expect_shape(op, "horizontal", horizontal, (n, taps, h, w), "same as vertical")
    if convention == "clean" and taps % 2 == 0:
        raise VfikitError(f"sepconv: the clean convention needs an odd kernel size, got n={taps}")
    hin, win = input_size(convention, h, w, taps - 1)
    expect_shape(op, "input", input, (n, input.shape[1], hin, win), f"{convention} convention with n={taps}")
    base = 0 if convention == "official" else -(taps - 1) // 2
    name = resolve_backend(backend, input.device)
    args = [input, vertical, horizontal]
    with torch.autocast(input.device.type, enabled=False) if cast else nullcontext():
        if name == "reference":
            return reference.sepconv(*args, base)
        x, kv, kh = (a.contiguous() for a in args)
        return _SepFn.apply(x, kv, kh, base, _kernels(name))


def backward_warp(image: torch.Tensor, flow: torch.Tensor, backend: str | None = None) -> torch.Tensor:
    """``out(p) = image(p + flow(p))``: bilinear, borders replicated (the position clamped to the image), exact
    gradients for both inputs.

    ``image`` (B, C, H, W); ``flow`` (B, 2, H, W) as (x, y) in pixels (the order of every flow in vfikit).
    ``backend`` None: torch's ``grid_sample`` (border padding, corners aligned), the fast path on every device
    (about 3x faster than the one-tap kernel on the dev CPU, and nothing to compile). Its twin, with a backend
    named (``"reference"``, ``"numba"``, ...): :func:`adacof` with one tap of weight one in the clean
    convention, which is how a kernel tap samples; the two agree to float32 rounding (tested). Under autocast
    the warp runs in float32. Returns (B, C, H, W).
    """
    if backend is not None:
        one = torch.ones_like(flow[:, :1])
        return adacof(image, one, flow[:, 1:2].contiguous(), flow[:, :1].contiguous(), 1, convention="clean",
                      backend=backend)
    (image, flow), _ = _autocast_to_fp32([image, flow])
    check_tensors("backward_warp", {"image": image, "flow": flow})
    b, _, h, w = image.shape
    if flow.shape != (b, 2, h, w):
        raise VfikitError(f"backward_warp: flow must be (B, 2, H, W) = {(b, 2, h, w)}, got {tuple(flow.shape)}")
    ys = torch.arange(h, dtype=flow.dtype, device=flow.device).view(1, h, 1)
    xs = torch.arange(w, dtype=flow.dtype, device=flow.device).view(1, 1, w)
    gx = (xs + flow[:, 0]) * (2.0 / max(w - 1, 1)) - 1.0
    gy = (ys + flow[:, 1]) * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack([gx, gy], dim=-1)
    with torch.autocast(image.device.type, enabled=False):
        return F.grid_sample(image, grid.to(image.dtype), mode="bilinear", padding_mode="border", align_corners=True)
