"""Augmentations, the repeatable mixed stream, the step sampler and batching."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vfikit.data.mixing import MixedStream, StepBatchSampler, collate_triplets
from vfikit.data.transforms import (
    CenterCrop,
    RandomCrop,
    RandomFlip,
    TemporalSwap,
    ToFloat,
    training_transforms,
)
from vfikit.data.triplet import Triplet
from vfikit.errors import VfikitError


def _coded(h=6, w=8, t=0.25) -> Triplet:
    """Frames whose values encode (frame, row, column), so any geometric change is visible."""
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    code = (ys * 16 + xs).to(torch.uint8)
    frame = lambda k: torch.stack([code, code, torch.full_like(code, k)])  # noqa: E731
    return Triplet(frame(0), frame(2), frame(1), t, "k")


def test_random_crop_takes_one_window_for_all_frames():
    s = RandomCrop(3)(_coded(), np.random.default_rng(0))
    assert s.frame0.shape == (3, 3, 3)
    assert torch.equal(s.frame0[:2], s.target[:2]) and torch.equal(s.frame0[:2], s.frame1[:2])
    assert (s.frame0[2] == 0).all() and (s.target[2] == 1).all() and (s.frame1[2] == 2).all()
    y, x = divmod(int(s.frame0[0, 0, 0]), 16)
    assert torch.equal(s.frame0, _coded().frame0[:, y : y + 3, x : x + 3])
    positions = {int(RandomCrop(3)(_coded(), np.random.default_rng(i)).frame0[0, 0, 0]) for i in range(40)}
    assert len(positions) > 8  # the window moves
    with pytest.raises(VfikitError, match="smaller than the crop"):
        RandomCrop(10)(_coded(), np.random.default_rng(0))
    assert int(CenterCrop(2)(_coded()).frame0[0, 0, 0]) == 2 * 16 + 3


def test_flips_apply_to_all_frames():
    s = RandomFlip(horizontal=1.0, vertical=0.0)(_coded(), np.random.default_rng(0))
    for f, ref in ((s.frame0, _coded().frame0), (s.frame1, _coded().frame1), (s.target, _coded().target)):
        assert torch.equal(f, ref.flip(-1))
    s = RandomFlip(horizontal=0.0, vertical=1.0)(_coded(), np.random.default_rng(0))
    assert torch.equal(s.target, _coded().target.flip(-2))
    s = RandomFlip(0.0, 0.0)(_coded(), np.random.default_rng(0))
    assert torch.equal(s.frame0, _coded().frame0)


def test_temporal_swap_swaps_inputs_and_time():
    s = TemporalSwap(1.0)(_coded(t=0.25), np.random.default_rng(0))
    assert (s.frame0[2] == 2).all() and (s.frame1[2] == 0).all() and (s.target[2] == 1).all()
    assert s.t == 0.75
    assert TemporalSwap(0.0)(_coded(t=0.25), np.random.default_rng(0)).t == 0.25


def test_to_float_and_the_papers_pipeline_is_repeatable():
    s = ToFloat()(_coded())
    assert s.frame0.dtype == torch.float32 and float(s.frame0.max()) == pytest.approx((5 * 16 + 7) / 255)
    pipeline = training_transforms(4)
    a, b = pipeline(_coded(), np.random.default_rng(7)), pipeline(_coded(), np.random.default_rng(7))
    assert torch.equal(a.frame0, b.frame0) and a.t == b.t and a.frame0.shape == (3, 4, 4)


class _Items(torch.utils.data.Dataset):
    def __init__(self, name: str, n: int) -> None:
        self.name, self.n = name, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Triplet:
        x = torch.full((3, 2, 2), float(i))
        return Triplet(x, x, x, 0.5, f"{self.name}/{i}")


def test_single_finite_dataset_is_a_permutation_per_epoch():
    stream = MixedStream([(_Items("a", 10), 1.0)], seed=3)
    first = [stream[g].key for g in range(10)]
    second = [stream[g].key for g in range(10, 20)]
    assert sorted(first) == sorted(f"a/{i}" for i in range(10)) == sorted(second)
    assert first != second
    assert [MixedStream([(_Items("a", 10), 1.0)], seed=3)[g].key for g in range(10)] == first


def test_mixture_follows_weights_and_is_repeatable():
    stream = MixedStream([(_Items("a", 5), 0.25), (_Items("b", 7), 0.75)], seed=0)
    picks = [stream.locate(g)[0] for g in range(4000)]
    assert np.mean(picks) == pytest.approx(0.75, abs=0.03)
    again = MixedStream([(_Items("a", 5), 0.25), (_Items("b", 7), 0.75)], seed=0)
    assert [again[g].key for g in range(50)] == [stream[g].key for g in range(50)]
    with pytest.raises(VfikitError, match="weights"):
        MixedStream([(_Items("a", 5), 0.0)])


def test_ranks_split_the_global_batch_of_each_step():
    single = list(StepBatchSampler(3, 6, 8))
    ranks = [list(StepBatchSampler(3, 6, 8, rank=r, world_size=2)) for r in range(2)]
    for step in range(3):
        assert ranks[0][step] + ranks[1][step] == single[step]
    assert single[0] == list(range(24, 32))
    with pytest.raises(VfikitError, match="not divisible"):
        StepBatchSampler(0, 1, 5, rank=0, world_size=2)


def test_collate_stacks_and_refuses_mixed_sizes():
    batch = collate_triplets([ToFloat()(_coded(t=0.25)), ToFloat()(_coded(t=0.75))])
    assert batch.frame0.shape == (2, 3, 6, 8) and batch.t.tolist() == [0.25, 0.75] and batch.keys == ["k", "k"]
    with pytest.raises(VfikitError, match="different sizes"):
        collate_triplets([_coded(), _coded(h=4)])


def test_factory_mixes_synthetic_and_clips_into_float_crops(tmp_path):
    from PIL import Image

    from vfikit.config import config_from_dict
    from vfikit.data.factory import build_train_stream, build_val_samples

    clip = tmp_path / "clip"
    clip.mkdir()
    rng = np.random.default_rng(0)
    base = rng.integers(0, 200, size=(20, 24, 3))
    for k in range(12):
        Image.fromarray((base + 4 * k).astype(np.uint8)).save(clip / f"{k:03d}.png")
    raw = {
        "model": {"arch": "unchecked"},
        "data": {
            "train": [{"type": "synthetic", "weight": 0.5, "objects": [0, 1]},
                      {"type": "sequences", "weight": 0.5, "optional_paths": [str(clip), str(tmp_path / "gone.mp4")],
                       "segment": [0.0, 0.75]}],
            "val": [{"type": "sequences", "optional_paths": [str(clip)], "segment": [0.75, 1.0]}],
            "crop": 16, "val_crop": 16, "val_samples": 3,
        },
    }
    cfg = config_from_dict(raw, check_external=False)
    logs: list[str] = []
    stream = build_train_stream(cfg.data, seed=0, log=logs.append)
    assert any("gone.mp4" in line and "skipped" in line for line in logs)
    samples = [stream[g] for g in range(24)]
    assert {s.key.split("/")[0] for s in samples} == {"synthetic", "clip"}
    assert all(s.frame0.dtype == torch.float32 and s.frame0.shape == (3, 16, 16) for s in samples)
    val = build_val_samples(cfg.data, seed=1, log=logs.append)
    again = build_val_samples(cfg.data, seed=1, log=logs.append)
    assert len(val) == 3 and all(torch.equal(a.target, b.target) for a, b in zip(val, again))
    assert {int(s.key.split("/")[1]) for s in val} == {9}  # the last quarter of the clip: frames 9, 10, 11


def test_vimeo_training_list_with_a_video_level_holdout(tmp_path):
    from PIL import Image

    from vfikit.config import config_from_dict
    from vfikit.data.factory import build_dataset, build_train_stream, build_val_samples

    entries = [f"{video:05d}/{clip:04d}" for video in range(1, 11) for clip in (1, 2, 3)]
    rng = np.random.default_rng(0)
    for entry in entries:
        folder = tmp_path / "sequences" / entry
        folder.mkdir(parents=True)
        for k in (1, 2, 3):
            Image.fromarray(rng.integers(0, 256, size=(20, 28, 3), dtype=np.uint8)).save(folder / f"im{k}.png")
    (tmp_path / "tri_trainlist.txt").write_text("\n".join(entries) + "\n\n")
    (tmp_path / "tri_testlist.txt").write_text("")  # never read for training
    spec = {"type": "vimeo90k", "root": str(tmp_path), "holdout": 0.3}
    raw = {"model": {"arch": "unchecked"},
           "data": {"train": [{**spec, "part": "train"}], "val": [{**spec, "part": "holdout"}],
                    "crop": 16, "val_crop": 16, "val_samples": 6}}
    cfg = config_from_dict(raw, check_external=False)
    stream = build_train_stream(cfg.data, seed=0, log=lambda m: None)
    n_train = len(stream.datasets[0])
    train_keys = {stream[g].key for g in range(n_train)}  # one epoch: every training item once
    assert len(train_keys) == n_train and all(stream[g].frame0.shape == (3, 16, 16) for g in range(3))
    val_keys = {s.key for s in build_val_samples(cfg.data, seed=1, log=lambda m: None)}
    train_videos, val_videos = {k.split("/")[0] for k in train_keys}, {k.split("/")[0] for k in val_keys}
    assert val_videos and not train_videos & val_videos
    held = build_dataset(cfg.data.val[0], crop=[16, 16])
    assert n_train + len(held) == len(entries) and len(held) % 3 == 0  # whole videos (3 clips each)
