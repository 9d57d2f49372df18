"""The one sample type shared by evaluation and training."""

from __future__ import annotations

from dataclasses import dataclass

import torch

MOTION_CHANNELS = 12  # Triplet.motion: flows t->0, t->1, visibility at t (0-5); flows 0->1, 1->0, visibility (6-11)
MOTION_X = (0, 2, 6, 8)  # the flows' x channels (a horizontal flip negates them)
MOTION_Y = (1, 3, 7, 9)  # the flows' y channels
MOTION_SWAPPED = (2, 3, 0, 1, 5, 4, 8, 9, 6, 7, 11, 10)  # the channels of the same motion with the inputs swapped


@dataclass
class Triplet:
    """Two input frames, the true frame at time ``t`` between them, and an identifier.

    ``frame0``, ``frame1``, ``target``: (3, H, W) float RGB in [0, 1] (a batch adds a leading B).
    ``t``: time of ``target`` in (0, 1), 0 = frame0. ``key``: a stable name (e.g. ``"Beanbags"``).
    ``part``: the validation part the sample belongs to (e.g. ``"real"``; empty outside validation).
    ``motion``: where the true motion is known (synthetic scenes), (MOTION_CHANNELS, H, W) = (12, H, W): at t,
    flows t->0 and t->1 (x, y each, pixels) and the visibility of each pixel of the target in frame0 and frame1
    (1 or 0); then the same between the inputs: flows 0->1 and 1->0 (``frame0(p) ~ frame1(p + F01(p))``) and
    whether each pixel of frame0 is seen in frame1 and each pixel of frame1 in frame0; else None.
    """

    frame0: torch.Tensor
    frame1: torch.Tensor
    target: torch.Tensor
    t: float = 0.5
    key: str = ""
    part: str = ""
    motion: torch.Tensor | None = None
