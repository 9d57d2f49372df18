"""Argument checks and tap geometry shared by every backend of the sampling ops.

Conventions (see docs/ops.md):

* ``"official"``: the authors' CUDA kernels. The input is padded by the caller; AdaCoF reads tap
  ``(k, l)`` of output pixel ``(i, j)`` at ``(i + k*D, j + l*D)`` and interpolates with truncated
  offsets; DSepConv reads tap ``(k, l)`` at ``(i + k - c + 1, j + l - c + 1)`` with ``c = (n-1)//2``
  and the doubled-border rule; SepConv reads ``(i + k, j + l)``.
* ``"clean"``: the input has the output's size, taps are centred (``k - (F-1)/2``), and sampling
  is bilinear with the position clamped to the image (identical to replicate padding).
"""

from __future__ import annotations

import math

import torch

from vfikit.errors import VfikitError, VfikitTypeError

CONVENTIONS = ("official", "clean")

# Sampling rules understood by every backend (one integer so compiled kernels can branch on it).
RULE_CLEAN = 0  # clamp the position to [0, L-1], then ordinary bilinear weights
RULE_ADACOF = 1  # AdaCoF official: trunc(offset), per-corner index clamping, weights from frac
RULE_DSEP = 2  # DSepConv official: floor of the raw position, weights from the clamped position

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def check_convention(convention: str) -> None:
    if convention not in CONVENTIONS:
        raise VfikitError(f"convention must be one of {CONVENTIONS}, got {convention!r}")


def check_tensors(op: str, named: dict[str, torch.Tensor]) -> None:
    """Every argument is a 4-D floating tensor of one dtype on one device."""
    first_name, first = next(iter(named.items()))
    for name, t in named.items():
        if not isinstance(t, torch.Tensor):
            raise VfikitTypeError(f"{op}: {name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 4:
            raise VfikitError(f"{op}: {name} must be 4-D (N, C, H, W), got shape {tuple(t.shape)}")
        if t.dtype not in _FLOAT_DTYPES:
            raise VfikitTypeError(f"{op}: {name} must be a floating tensor, got dtype {t.dtype}")
        if t.dtype != first.dtype:
            raise VfikitTypeError(
                f"{op}: all tensors must share one dtype; {first_name} is {first.dtype} but {name} is {t.dtype}"
            )
        if t.device != first.device:
            raise VfikitError(
                f"{op}: all tensors must be on one device; {first_name} is on {first.device} "
                f"but {name} is on {t.device}"
            )
    n = first.shape[0]
    for name, t in named.items():
        if t.shape[0] != n:
            raise VfikitError(
                f"{op}: batch sizes differ: {first_name} has {n} but {name} has {t.shape[0]} "
                f"(shape {tuple(t.shape)})"
            )


def expect_shape(op: str, name: str, t: torch.Tensor, shape: tuple[int, ...], why: str = "") -> None:
    if tuple(t.shape) != tuple(shape):
        extra = f" ({why})" if why else ""
        raise VfikitError(f"{op}: {name} must have shape {tuple(shape)}{extra}, got {tuple(t.shape)}")


def taps_from_channels(op: str, name: str, channels: int) -> int:
    f = math.isqrt(channels)
    if f * f != channels or f < 1:
        raise VfikitError(f"{op}: {name} must have a square number of channels (F*F taps), got {channels}")
    return f


def tap_bases(size: int, step: int, convention: str, op: str) -> list[float]:
    """Per-tap base displacement (rows or columns) relative to the output pixel.

    ``size`` taps spaced by ``step`` (the dilation). See the module docstring for each rule.
    """
    if convention == "clean":
        centre = (size - 1) / 2.0
        return [(k - centre) * step for k in range(size)]
    if op == "dsepconv":
        c = (size - 1) // 2
        return [float(k - c + 1) for k in range(size)]
    return [float(k * step) for k in range(size)]


def expand_taps(bases_1d: list[float], size: int) -> tuple[list[float], list[float]]:
    """Row and column base of each of the ``size*size`` taps, tap index ``t = size*k + l``."""
    by = [bases_1d[t // size] for t in range(size * size)]
    bx = [bases_1d[t % size] for t in range(size * size)]
    return by, bx


def input_size(convention: str, h: int, w: int, reach: int) -> tuple[int, int]:
    """Expected input height/width: padded by ``reach`` in the official convention."""
    if convention == "official":
        return h + reach, w + reach
    return h, w
