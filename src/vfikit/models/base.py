"""The one model contract: ``model(frame0, frame1, t=None) -> frame_t``."""

from __future__ import annotations

from torch import nn


class VFIModel(nn.Module):
    """Base class of every interpolation model.

    ``forward(frame0, frame1, t=None)`` takes two (B, 3, H, W) RGB frames in [0, 1] of any size
    (each model pads to what it needs and crops back) and returns the (B, 3, H, W) frame at time
    ``t`` (float or (B,) tensor; None means 0.5). Models whose ``arbitrary_t`` is False only
    compute t = 0.5 and raise on any other t; ``vfikit.Interpolator`` reaches other times by
    recursive bisection. Outputs are not clamped.
    """

    arbitrary_t: bool = False
