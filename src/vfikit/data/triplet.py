"""The one sample type shared by evaluation and training."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Triplet:
    """Two input frames, the true frame at time ``t`` between them, and an identifier.

    ``frame0``, ``frame1``, ``target``: (3, H, W) float RGB in [0, 1] (a batch adds a leading B).
    ``t``: time of ``target`` in (0, 1), 0 = frame0. ``key``: a stable name (e.g. ``"Beanbags"``).
    ``part``: the validation part the sample belongs to (e.g. ``"real"``; empty outside validation).
    ``motion``: where the true motion is known (synthetic scenes), (6, H, W): flows t->0 and t->1 (x, y each,
    pixels) and the visibility of each pixel of the target in frame0 and frame1 (1 or 0); else None.
    """

    frame0: torch.Tensor
    frame1: torch.Tensor
    target: torch.Tensor
    t: float = 0.5
    key: str = ""
    part: str = ""
    motion: torch.Tensor | None = None
