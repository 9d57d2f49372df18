"""An endless, exactly repeatable stream of training samples mixed from several datasets.

Sample number ``g`` of the stream is fully determined by ``(seed, g)``: which dataset it comes
from (drawn by weight), which item, and its augmentation all use
``numpy.random.default_rng([seed, g])``. A training step ``s`` with global batch ``B`` uses the
samples ``s*B ... s*B + B - 1``; under DDP rank ``r`` of ``W`` takes its contiguous share. So:

* resuming at step ``s`` only needs ``s`` (no sampler or worker state to restore),
* N processes with the same global batch see exactly the samples one process would see,
* results do not depend on the number of DataLoader workers.

This replaces ``DistributedSampler`` + ``set_epoch``: with a single finite dataset each "epoch"
(``len(dataset)`` consecutive samples) is a fresh permutation without repetition, as with a
shuffling sampler; with several datasets items are drawn with replacement by weight. Procedural
datasets (``endless = True``) alone give sample ``g`` item ``g``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from vfikit.data.transforms import Transform
from vfikit.data.triplet import MOTION_CHANNELS, Triplet
from vfikit.errors import VfikitError


class MixedStream(Dataset):
    """``stream[g]``: sample ``g`` of the mixture (see the module docstring).

    Args:
        components: ``(dataset, weight)`` pairs; weights are relative (need not sum to 1).
        transform: applied to every sample with the sample's rng (None: none).
        seed: the stream's seed.
    """

    def __init__(
        self, components: Sequence[tuple[Dataset, float]], transform: Transform | None = None, seed: int = 0
    ) -> None:
        if not components:
            raise VfikitError("no training datasets given")
        weights = np.array([float(w) for _, w in components], dtype=np.float64)
        if (weights < 0).any() or weights.sum() <= 0:
            raise VfikitError(f"dataset weights must be >= 0 with a positive sum, got {weights.tolist()}")
        for ds, _ in components:
            if len(ds) == 0:
                raise VfikitError(f"a training dataset is empty: {ds!r}")
        self.datasets = [ds for ds, _ in components]
        self.probs = weights / weights.sum()
        self.transform = transform
        self.seed = int(seed)
        self._perm_epoch = -1
        self._perm: np.ndarray | None = None

    def __len__(self) -> int:
        return 2**62  # endless; indices come from StepBatchSampler

    def _epoch_permutation(self, epoch: int, n: int) -> np.ndarray:
        if self._perm_epoch != epoch:
            self._perm = np.random.default_rng([self.seed, epoch, 0x5EED]).permutation(n)
            self._perm_epoch = epoch
        assert self._perm is not None
        return self._perm

    def locate(self, g: int) -> tuple[int, int, np.random.Generator]:
        """(component, item index, rng for the augmentation) of sample ``g``."""
        rng = np.random.default_rng([self.seed, int(g)])
        if len(self.datasets) == 1:
            n = len(self.datasets[0])
            if getattr(self.datasets[0], "endless", False):  # procedural: every sample number is new
                return 0, int(g) % n, rng
            return 0, int(self._epoch_permutation(int(g) // n, n)[int(g) % n]), rng
        c = int(rng.choice(len(self.datasets), p=self.probs))
        return c, int(rng.integers(len(self.datasets[c]))), rng

    def __getitem__(self, g: int) -> Triplet:
        c, index, rng = self.locate(g)
        sample = self.datasets[c][index]
        return self.transform(sample, rng) if self.transform is not None else sample


class StepBatchSampler(Sampler[list[int]]):
    """Yields, for each step in ``[start_step, end_step)``, this rank's sample numbers of that step."""

    def __init__(self, start_step: int, end_step: int, global_batch: int, rank: int = 0, world_size: int = 1) -> None:
        if global_batch % world_size:
            raise VfikitError(f"the global batch size {global_batch} is not divisible by {world_size} processes")
        self.start_step, self.end_step = int(start_step), int(end_step)
        self.global_batch, self.rank = int(global_batch), int(rank)
        self.local_batch = self.global_batch // world_size

    def __len__(self) -> int:
        return max(0, self.end_step - self.start_step)

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start_step, self.end_step):
            base = step * self.global_batch + self.rank * self.local_batch
            yield list(range(base, base + self.local_batch))


@dataclass
class Batch:
    """A batch of triplets: frames (B, 3, H, W), ``t`` (B,) float32, ``keys`` B strings.

    ``motion``: (B, 12, H, W) the samples' exact motion (``Triplet.motion``), zeros (nothing visible) for samples
    without it; None when no sample has it. ``motion_known``: (B,) bool, which samples have it.
    """

    frame0: torch.Tensor
    frame1: torch.Tensor
    target: torch.Tensor
    t: torch.Tensor
    keys: list[str]
    motion: torch.Tensor | None = None
    motion_known: torch.Tensor | None = None

    def to(self, device: torch.device | str, non_blocking: bool = False,
           memory_format: torch.memory_format = torch.contiguous_format) -> Batch:
        """On ``device``; the frames in ``memory_format`` (e.g. ``torch.channels_last``)."""
        def move(x: torch.Tensor) -> torch.Tensor:
            return x.to(device, non_blocking=non_blocking).contiguous(memory_format=memory_format)

        def plain(x: torch.Tensor | None) -> torch.Tensor | None:
            return None if x is None else x.to(device, non_blocking=non_blocking)

        return Batch(move(self.frame0), move(self.frame1), move(self.target), plain(self.t), self.keys,
                     plain(self.motion), plain(self.motion_known))

    def pin_memory(self) -> Batch:
        def pin(x: torch.Tensor | None) -> torch.Tensor | None:
            return None if x is None else x.pin_memory()

        return Batch(pin(self.frame0), pin(self.frame1), pin(self.target), pin(self.t), self.keys,
                     pin(self.motion), pin(self.motion_known))

    def __len__(self) -> int:
        return self.frame0.shape[0]


def collate_triplets(samples: Sequence[Triplet]) -> Batch:
    """Stack Triplets into a Batch; all frames must have one size."""
    shapes = {tuple(s.frame0.shape) for s in samples} | {tuple(s.target.shape) for s in samples}
    if len(shapes) != 1:
        raise VfikitError(f"cannot batch samples of different sizes {sorted(shapes)}; set data.crop")
    known = [s.motion is not None for s in samples]
    motion = motion_known = None
    if any(known):
        size = samples[0].frame0.shape[-2:]
        nothing = torch.zeros(MOTION_CHANNELS, *size)
        motion = torch.stack([s.motion if s.motion is not None else nothing for s in samples])
        motion_known = torch.tensor(known)
    return Batch(
        torch.stack([s.frame0 for s in samples]),
        torch.stack([s.frame1 for s in samples]),
        torch.stack([s.target for s in samples]),
        torch.tensor([float(s.t) for s in samples], dtype=torch.float32),
        [s.key for s in samples],
        motion,
        motion_known,
    )
