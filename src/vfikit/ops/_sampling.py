"""The three per-axis sampling rules, in PyTorch (used by the reference and the tap-wise backend).

A sample along one axis reads two neighbouring indices ``i0, i1`` with weights ``w0, w1``.
``w0`` and ``w1`` are differentiable functions of the offset (autograd gives the true derivative of
the forward); ``active`` is 1 where ``dw1/doffset = +1`` and ``dw0/doffset = -1``, 0 where the
position is clamped, so hand-written backwards can use it.
"""

from __future__ import annotations

import torch

from vfikit.ops._geometry import RULE_ADACOF, RULE_CLEAN, RULE_DSEP

BIG = 1e9  # offsets are clamped to +-BIG so integer conversion is always defined


def sanitize(v: torch.Tensor) -> torch.Tensor:
    """Map NaN to -BIG and clamp to [-BIG, BIG] (same rule as the compiled kernels)."""
    return torch.nan_to_num(v, nan=-BIG, posinf=BIG, neginf=-BIG).clamp(-BIG, BIG)


def position_dtype(dtype: torch.dtype) -> torch.dtype:
    """Positions are computed in at least float32 (fp16 cannot hold pixel coordinates exactly)."""
    return torch.promote_types(dtype, torch.float32)


def axis_weights(
    offset: torch.Tensor, base: torch.Tensor, length: int, rule: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Indices and weights of a sample at ``base + offset`` along an axis of ``length`` pixels.

    Args:
        offset: learned displacement, any shape.
        base: integer-or-fractional base position, broadcastable to ``offset``.
        length: size of the sampled axis.
        rule: RULE_CLEAN, RULE_ADACOF or RULE_DSEP.
    Returns:
        ``(i0, i1, w0, w1, active)``; indices are int64 in ``[0, length)``.
    """
    hi = float(length - 1)
    off = sanitize(offset)
    if rule == RULE_ADACOF:
        whole = torch.trunc(off).detach()
        frac = off - whole
        p0 = base + whole
        i0 = p0.clamp(0.0, hi).long()
        i1 = (p0 + 1.0).clamp(0.0, hi).long()
        return i0, i1, 1.0 - frac, frac, torch.ones_like(frac)
    pos = sanitize(off + base)
    active = ((pos >= 0.0) & (pos <= hi)).to(pos.dtype)
    clamped = pos.clamp(0.0, hi)
    if rule == RULE_DSEP:
        fl = torch.floor(pos).detach()
        top = fl.clamp(0.0, hi)
        bottom = (fl + 1.0).clamp(0.0, hi)
        return top.long(), bottom.long(), 1.0 + (top - clamped), 1.0 - (bottom - clamped), active
    if rule == RULE_CLEAN:
        fl = torch.floor(clamped).detach()
        i0 = fl.long()
        i1 = (i0 + 1).clamp(max=length - 1)
        w1 = clamped - fl
        return i0, i1, 1.0 - w1, w1, active
    raise ValueError(f"unknown sampling rule {rule}")
