"""Frame folders and videos -> Triplets: ordering, windows, t, segments, cuts, duplicates, PyAV."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import shared_path
from vfikit.data.sequences import FrameSequenceDataset, discover_clips
from vfikit.errors import VfikitError


def _frames(n: int, seed: int = 0, size=(12, 16)) -> list[np.ndarray]:
    """Distinct smooth frames (a moving gradient plus noise), so cuts are not detected."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(*size, 3))
    return [np.clip(base + 3 * k, 0, 255).astype(np.uint8) for k in range(n)]


def _write_folder(folder: Path, frames: list[np.ndarray], stem: str = "f") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for k, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"{stem}{k + 1}.png")  # f1 ... f12: natural order matters
    return folder


def test_frame_folder_triplets_in_natural_order(tmp_path):
    frames = _frames(12)
    folder = _write_folder(tmp_path / "clip", frames)
    ds = FrameSequenceDataset([folder])
    assert len(ds) == 10
    s = ds[9]  # frames 9, 11 with 10 as truth (f10, f12, f11: lexical order would put f10 after f1)
    assert torch.equal(s.frame0, torch.from_numpy(frames[9]).permute(2, 0, 1).float() / 255)
    assert torch.equal(s.target, torch.from_numpy(frames[10]).permute(2, 0, 1).float() / 255)
    assert torch.equal(s.frame1, torch.from_numpy(frames[11]).permute(2, 0, 1).float() / 255)
    assert s.t == 0.5 and s.key == "clip/00009"


def test_windows_with_several_t(tmp_path):
    frames = _frames(9)
    folder = _write_folder(tmp_path / "c", frames)
    ds = FrameSequenceDataset([folder], window=4, targets="all", uint8=True)
    assert len(ds) == (9 - 4) * 3
    by_key = {ds[i].key: ds[i] for i in range(len(ds))}
    s = by_key["c/00002+3/4"]
    assert s.t == 0.75 and s.frame0.dtype == torch.uint8
    assert torch.equal(s.target, torch.from_numpy(frames[5]).permute(2, 0, 1))
    assert torch.equal(s.frame1, torch.from_numpy(frames[6]).permute(2, 0, 1))
    middle = FrameSequenceDataset([folder], window=4)
    assert {middle[i].t for i in range(len(middle))} == {0.5} and len(middle) == 5


def test_segments_are_disjoint(tmp_path):
    folder = _write_folder(tmp_path / "c", _frames(20))
    train = FrameSequenceDataset([folder], segment=[0.0, 0.5])
    val = FrameSequenceDataset([folder], segment=[0.5, 1.0])
    used_train = {i + k for _, i, _ in train.items for k in range(3)}
    used_val = {i + k for _, i, _ in val.items for k in range(3)}
    assert used_train and used_val and not used_train & used_val


def test_scene_cuts_and_repeated_frames_are_skipped(tmp_path):
    frames = _frames(6, seed=1) + _frames(6, seed=2)  # a cut between frame 5 and 6
    ds = FrameSequenceDataset([_write_folder(tmp_path / "cut", frames)])
    starts = sorted(i for _, i, _ in ds.items)
    assert starts == [0, 1, 2, 3, 6, 7, 8, 9]
    kept = FrameSequenceDataset([tmp_path / "cut"], cut_threshold=None)
    assert len(kept) == 10
    dup = _frames(8)
    dup[4] = dup[3].copy()
    ds = FrameSequenceDataset([_write_folder(tmp_path / "dup", dup)])
    assert sorted(i for _, i, _ in ds.items) == [0, 1, 4, 5]  # windows over 3->4 (2 and 3) left out


def test_video_file_decodes_exactly_with_a_lossless_codec(tmp_path):
    frames = _frames(7, size=(16, 24))
    path = tmp_path / "clip.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = 24, 16, "bgr0"
        for f in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        container.mux(stream.encode())
    ds = FrameSequenceDataset([tmp_path], uint8=True)
    assert [c.name for c in ds.clips] == [f"{tmp_path.name}/clip"]
    assert len(ds) == 5
    assert torch.equal(ds[2].target, torch.from_numpy(frames[3]).permute(2, 0, 1))


def test_nested_discovery_and_errors(tmp_path):
    _write_folder(tmp_path / "root" / "a", _frames(4))
    _write_folder(tmp_path / "root" / "b" / "c", _frames(4))
    names = [c.name for c in discover_clips([tmp_path / "root"])]
    assert names == ["root/a", "root/b/c"]
    with pytest.raises(VfikitError, match="no such file"):
        FrameSequenceDataset([tmp_path / "missing"])
    with pytest.raises(VfikitError, match="even window"):
        FrameSequenceDataset([tmp_path / "root"], window=3)
    with pytest.raises(VfikitError, match="no usable windows"):
        FrameSequenceDataset([tmp_path / "root" / "a"], window=4)


def test_real_clips_from_shared_data():
    clips = shared_path("data", "clips")
    ds = FrameSequenceDataset([clips / "davis_car_turn" / "car-turn.mp4"], max_frames=8, max_side=160)
    assert len(ds) == 6 and ds[0].frame0.shape == (3, 90, 160)
    seq = FrameSequenceDataset([clips / "cdfi_img_seq"], max_frames=5, max_side=120)
    assert len(seq) == 3 and seq[0].frame0.shape[1:] == (67, 120)


def test_lazy_listed_clips_with_a_holdout_split(tmp_path):
    root = tmp_path / "sequences"
    names = [f"{video:05d}/{clip:04d}" for video in range(1, 9) for clip in (1, 2)]
    for k, name in enumerate(names):
        _write_folder(root / name, _frames(7, seed=k), stem="im")
    (tmp_path / "list.txt").write_text("\n".join(names) + "\n\n")
    kwargs = {"window": 6, "targets": "all", "cache": False, "list_file": tmp_path / "list.txt"}
    everything = FrameSequenceDataset([root], **kwargs)
    assert len(everything) == 16 * 5 and everything.memory_bytes == 0
    s = everything[3]  # clip 0, target im5 at t = 4/6, read from disk on access
    assert s.t == pytest.approx(4 / 6) and s.key == "00001/0001/00000+4/6"
    assert torch.equal(s.target, torch.from_numpy(_frames(7, seed=0)[4]).permute(2, 0, 1).float() / 255)
    train = FrameSequenceDataset([root], holdout=0.3, part="train", **kwargs)
    held = FrameSequenceDataset([root], holdout=0.3, part="holdout", **kwargs)
    train_videos = {c.name.split("/")[0] for c in train.clips}
    held_videos = {c.name.split("/")[0] for c in held.clips}
    assert held_videos and train_videos and not train_videos & held_videos  # whole videos held out
    assert len(train.clips) + len(held.clips) == 16
    (tmp_path / "bad.txt").write_text("00001/0009\n")
    with pytest.raises(VfikitError, match="line 1: clip folder"):
        FrameSequenceDataset([root], window=6, targets="all", list_file=tmp_path / "bad.txt")
