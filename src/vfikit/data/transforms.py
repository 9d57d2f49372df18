"""Composable Triplet augmentations (the papers': random crop, flips, temporal order swap).

A transform is ``transform(triplet, rng) -> triplet`` with a ``numpy.random.Generator``: every
random choice comes from ``rng``, so a sample's augmentation is fixed by the seed it is drawn
with (exact resume, identical results with any number of DataLoader workers). Transforms work on
float or uint8 (3, H, W) frames; ``ToFloat`` converts uint8 to float in [0, 1] (crop first,
convert last: cheaper).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
import torch

from vfikit.data.triplet import MOTION_SWAPPED, MOTION_X, MOTION_Y, Triplet
from vfikit.errors import VfikitError

Transform = Callable[[Triplet, np.random.Generator], Triplet]


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    if len(size) != 2:
        raise VfikitError(f"crop size must be an int or [H, W], got {size}")
    return int(size[0]), int(size[1])


def _apply(s: Triplet, fn: Callable[[torch.Tensor], torch.Tensor]) -> Triplet:
    """``fn`` on the three frames and, when known, the motion channels (a spatial crop, not a flip)."""
    motion = None if s.motion is None else fn(s.motion)
    return replace(s, frame0=fn(s.frame0), frame1=fn(s.frame1), target=fn(s.target), motion=motion)


def _flip(s: Triplet, dim: int) -> Triplet:
    """Mirror along ``dim`` (-1: horizontal, -2: vertical); the flows' x (or y) components change sign."""
    s = _apply(s, lambda f: f.flip(dim))
    if s.motion is not None:
        sign = torch.ones(s.motion.shape[0], 1, 1)
        sign[list(MOTION_X if dim == -1 else MOTION_Y)] = -1
        s = replace(s, motion=s.motion * sign)
    return s


class RandomCrop:
    """The same random (h, w) window of all three frames; frames smaller than it raise VfikitError."""

    def __init__(self, size: int | Sequence[int]) -> None:
        self.h, self.w = _pair(size)

    def __call__(self, s: Triplet, rng: np.random.Generator) -> Triplet:
        hh, ww = s.frame0.shape[-2:]
        if hh < self.h or ww < self.w:
            raise VfikitError(f"sample {s.key!r} is {hh}x{ww}, smaller than the crop {self.h}x{self.w}")
        y = int(rng.integers(0, hh - self.h + 1))
        x = int(rng.integers(0, ww - self.w + 1))
        return _apply(s, lambda f: f[..., y : y + self.h, x : x + self.w])


class CenterCrop:
    """The central (h, w) window of all three frames."""

    def __init__(self, size: int | Sequence[int]) -> None:
        self.h, self.w = _pair(size)

    def __call__(self, s: Triplet, rng: np.random.Generator | None = None) -> Triplet:
        hh, ww = s.frame0.shape[-2:]
        if hh < self.h or ww < self.w:
            raise VfikitError(f"sample {s.key!r} is {hh}x{ww}, smaller than the crop {self.h}x{self.w}")
        y, x = (hh - self.h) // 2, (ww - self.w) // 2
        return _apply(s, lambda f: f[..., y : y + self.h, x : x + self.w])


class RandomFlip:
    """Horizontal flip with probability ``horizontal``, then vertical with ``vertical`` (all frames)."""

    def __init__(self, horizontal: float = 0.5, vertical: float = 0.5) -> None:
        self.horizontal, self.vertical = horizontal, vertical

    def __call__(self, s: Triplet, rng: np.random.Generator) -> Triplet:
        if rng.random() < self.horizontal:
            s = _flip(s, -1)
        if rng.random() < self.vertical:
            s = _flip(s, -2)
        return s


class TemporalSwap:
    """With probability ``p`` swap the inputs and map t to 1 - t (the target stays; so do its flows, which trade
    places with their visibilities)."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, s: Triplet, rng: np.random.Generator) -> Triplet:
        if rng.random() < self.p:
            motion = None if s.motion is None else s.motion[list(MOTION_SWAPPED)]
            return replace(s, frame0=s.frame1, frame1=s.frame0, t=1.0 - float(s.t), motion=motion)
        return s


class ToFloat:
    """uint8 frames to float32 in [0, 1] (float frames pass through)."""

    def __call__(self, s: Triplet, rng: np.random.Generator | None = None) -> Triplet:
        if s.frame0.dtype == torch.uint8:
            return replace(s, frame0=s.frame0.float().div_(255.0), frame1=s.frame1.float().div_(255.0),
                           target=s.target.float().div_(255.0))
        return s


class Compose:
    """Apply transforms in order with the same ``rng``."""

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, s: Triplet, rng: np.random.Generator) -> Triplet:
        for transform in self.transforms:
            s = transform(s, rng)
        return s


def training_transforms(
    crop: int | Sequence[int] | None, hflip: float = 0.5, vflip: float = 0.5, temporal_swap: float = 0.5
) -> Compose:
    """The papers' augmentation: random crop (None: full frames), h/v flips, temporal swap, to float."""
    steps: list[Transform] = []
    if crop is not None:
        steps.append(RandomCrop(crop))
    if hflip > 0 or vflip > 0:
        steps.append(RandomFlip(hflip, vflip))
    if temporal_swap > 0:
        steps.append(TemporalSwap(temporal_swap))
    steps.append(ToFloat())
    return Compose(steps)


class TransformedDataset(torch.utils.data.Dataset):
    """``dataset[i]`` passed through ``transform`` with an rng seeded by ``(seed, i)`` (repeatable)."""

    def __init__(self, dataset: torch.utils.data.Dataset, transform: Transform, seed: int = 0) -> None:
        self.dataset, self.transform, self.seed = dataset, transform, int(seed)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Triplet:
        return self.transform(self.dataset[index], np.random.default_rng([self.seed, int(index)]))
