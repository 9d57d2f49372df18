"""Datasets from config entries: the training stream and the fixed validation samples."""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset

from vfikit.config import (
    DataConfig,
    DatasetConfig,
    SequencesDatasetConfig,
    SyntheticDatasetConfig,
    Vimeo90kDatasetConfig,
    resolve_path,
)
from vfikit.data.mixing import MixedStream
from vfikit.data.sequences import FrameSequenceDataset
from vfikit.data.synthetic import SyntheticConfig, SyntheticDataset
from vfikit.data.transforms import Compose, RandomCrop, ToFloat, training_transforms
from vfikit.data.triplet import Triplet
from vfikit.errors import VfikitError

Log = Callable[[str], None]


def _crop_size(crop: int | list[int] | None) -> list[int] | None:
    if crop is None:
        return None
    return [crop, crop] if isinstance(crop, int) else list(crop)


class HoldoutSplit(Dataset):
    """The items of ``dataset`` whose group (``group_of(key)``) hashes into the held-out fraction
    (``part="holdout"``) or not (``part="train"``). Stable across runs and machines (crc32)."""

    def __init__(self, dataset: Dataset, keys: Sequence[str], fraction: float, part: str,
                 group_of: Callable[[str], str] = lambda k: k.split("/")[0]) -> None:
        def held(key: str) -> bool:
            return (zlib.crc32(group_of(key).encode()) % 10_000) < fraction * 10_000

        self.dataset = dataset
        self.indices = [i for i, k in enumerate(keys) if held(k) == (part == "holdout")]
        if not self.indices:
            raise VfikitError(f"the {part} part of a {fraction:.3f} hold-out split is empty")

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Triplet:
        return self.dataset[self.indices[index]]


def _vimeo(spec: Vimeo90kDatasetConfig) -> Dataset:
    from vfikit.data.vimeo90k import Vimeo90KTriplet

    assert spec.root is not None  # config validation requires it
    ds = Vimeo90KTriplet(resolve_path(spec.root), split="train")
    if spec.holdout > 0:
        return HoldoutSplit(ds, [s.key for s in ds.samples], spec.holdout, spec.part)
    return ds


def _existing(paths: Sequence[str], log: Log) -> list[Path]:
    """The optional paths that exist; the others are reported through ``log``."""
    found = []
    for p in paths:
        try:
            resolved = resolve_path(p)
        except VfikitError as exc:
            log(f"note: optional path skipped: {exc}")
            continue
        if resolved.exists():
            found.append(resolved)
        else:
            log(f"note: optional path skipped (not found): {p}")
    return found


def build_dataset(spec: DatasetConfig, *, crop: list[int] | None, log: Log = print) -> Dataset:
    """One dataset of Triplets (frames may be uint8; the stream's transforms end with ToFloat)."""
    if isinstance(spec, SyntheticDatasetConfig):
        fields = {f.name for f in dataclasses.fields(SyntheticConfig)}  # the generator's own settings
        params = {k: v for k, v in dataclasses.asdict(spec).items() if k in fields}
        size = spec.size if spec.size is not None else crop
        if size is None:
            raise VfikitError("a synthetic dataset needs a size: set its 'size' or data.crop")
        params["size"] = list(size)
        params["texture_sources"] = [str(resolve_path(p)) for p in spec.texture_sources] + [
            str(p) for p in _existing(spec.texture_optional, log)
        ]
        return SyntheticDataset(SyntheticConfig(**params), seed=spec.seed, length=2**40)
    if isinstance(spec, SequencesDatasetConfig):
        paths = [resolve_path(p) for p in spec.paths] + _existing(spec.optional_paths, log)
        return FrameSequenceDataset(
            paths, window=spec.window, targets=spec.targets, step=spec.step, max_side=spec.max_side,
            max_frames=spec.max_frames, segment=spec.segment, cut_threshold=spec.cut_threshold,
            skip_duplicates=spec.skip_duplicates, uint8=True, cache=spec.cache,
            list_file=resolve_path(spec.list_file) if spec.list_file else None, holdout=spec.holdout, part=spec.part,
        )
    if isinstance(spec, Vimeo90kDatasetConfig):
        return _vimeo(spec)
    raise VfikitError(f"unsupported dataset type {spec.type!r}")


def build_train_stream(data: DataConfig, seed: int, log: Log = print) -> MixedStream:
    """The endless, repeatable training stream (mixture + the papers' augmentation)."""
    crop = _crop_size(data.crop)
    components = []
    for spec in data.train:
        ds = build_dataset(spec, crop=crop, log=log)
        log(f"data: {spec.type} x{spec.weight:g}: {_describe(ds)}")
        components.append((ds, spec.weight))
    transform = training_transforms(crop, data.hflip, data.vflip, data.temporal_swap)
    return MixedStream(components, transform, seed=seed)


def build_val_samples(data: DataConfig, seed: int, log: Log = print) -> list[Triplet]:
    """``data.val_samples`` fixed validation samples from ``data.val`` (empty list when none)."""
    if not data.val or data.val_samples == 0:
        return []
    crop = _crop_size(data.val_crop)
    components = []
    for spec in data.val:
        ds = build_dataset(spec, crop=crop, log=log)
        log(f"val: {spec.type} x{spec.weight:g}: {_describe(ds)}")
        components.append((ds, spec.weight))
    steps = [RandomCrop(crop)] if crop is not None else []
    stream = MixedStream(components, Compose([*steps, ToFloat()]), seed=seed)
    names = [spec.name or spec.type for spec in data.val]
    return [dataclasses.replace(stream[g], part=names[stream.locate(g)[0]]) for g in range(data.val_samples)]


def t_values_fixed(data: DataConfig) -> bool:
    """True when every training and validation sample has t = 0.5 (what fixed-t models need),
    temporal swap included (1 - 0.5 = 0.5)."""
    for spec in [*data.train, *data.val]:
        if isinstance(spec, SyntheticDatasetConfig):
            if spec.t_range is not None and spec.t_range != [0.5, 0.5]:
                return False
            ts = spec.t if isinstance(spec.t, list) else [spec.t]
            if any(float(x) != 0.5 for x in ts):
                return False
        elif isinstance(spec, SequencesDatasetConfig) and spec.targets == "all":
            return False
    return True


def _describe(ds: Dataset) -> str:
    if isinstance(ds, SyntheticDataset):
        h, w = ds.generator.config.size
        pool = ds.generator.pool
        return f"procedural {h}x{w}" + (f", {len(pool)} texture frames" if pool else "")
    if isinstance(ds, FrameSequenceDataset):
        return f"{len(ds)} windows from {len(ds.clips)} clips ({ds.memory_bytes / 2**20:.0f} MiB cached)"
    return f"{len(ds)} items"


def stack_val(samples: list[Triplet], start: int, size: int) -> tuple[torch.Tensor, ...]:
    chunk = samples[start : start + size]
    return (
        torch.stack([s.frame0 for s in chunk]),
        torch.stack([s.frame1 for s in chunk]),
        torch.stack([s.target for s in chunk]),
        torch.tensor([float(s.t) for s in chunk], dtype=torch.float32),
    )


def sample_fingerprint(samples: Sequence[Triplet]) -> str:
    """A short hash of which samples a list holds (keys, parts, t and sizes, in order): two validation sets with
    the same fingerprint are the same set. The optional clips of a recipe change it when a machine lacks them."""
    import hashlib

    text = "\n".join(f"{s.key}|{s.part}|{float(s.t):.6f}|{tuple(s.frame0.shape)}" for s in samples)
    return hashlib.sha256(text.encode()).hexdigest()[:12]
