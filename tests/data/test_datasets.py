"""Benchmark loaders on fake layouts written into tmp_path (every loader + a missing-file error each)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.helpers import as_tensor, make_middlebury_cdfi, png
from vfikit.data.benchmarks import open_benchmark
from vfikit.data.davis import DavisTriplets
from vfikit.data.middlebury import MiddleburyOthers
from vfikit.data.snufilm import SNUFILM
from vfikit.data.ucf101 import UCF101DVF
from vfikit.data.vimeo90k import Vimeo90KTriplet
from vfikit.errors import VfikitError


def assert_sample(sample, f0: np.ndarray, f1: np.ndarray, gt: np.ndarray, key: str) -> None:
    assert sample.key == key
    assert sample.t == 0.5
    assert torch.equal(sample.frame0, as_tensor(f0))
    assert torch.equal(sample.frame1, as_tensor(f1))
    assert torch.equal(sample.target, as_tensor(gt))


# ---------------------------------------------------------------- Middlebury

def test_middlebury_cdfi_layout(tmp_path):
    arrays = make_middlebury_cdfi(tmp_path)
    ds = MiddleburyOthers(tmp_path)
    assert ds.layout == "cdfi"
    assert ds.keys == ["Beanbags", "Venus"]  # name order, as CDFI evaluates
    assert len(ds) == 2
    assert_sample(ds[1], *arrays["Venus"], "Venus")


def test_middlebury_official_layout_uses_frames_10_and_11(tmp_path):
    for k in range(7, 15):
        png(tmp_path / "other-data" / "Grove2" / f"frame{k:02d}.png")
    f0 = np.asarray(Image.open(tmp_path / "other-data" / "Grove2" / "frame10.png"))
    f1 = np.asarray(Image.open(tmp_path / "other-data" / "Grove2" / "frame11.png"))
    gt = png(tmp_path / "other-gt-interp" / "Grove2" / "frame10i11.png")
    ds = open_benchmark("middlebury", tmp_path)
    assert ds.layout == "official"
    assert_sample(ds[0], f0, f1, gt, "Grove2")


def test_middlebury_missing_input_names_the_file(tmp_path):
    make_middlebury_cdfi(tmp_path)
    missing = tmp_path / "input" / "Venus" / "frame11.png"
    missing.unlink()
    with pytest.raises(VfikitError, match=r"frame11.png"):
        MiddleburyOthers(tmp_path)


def test_middlebury_without_either_layout(tmp_path):
    (tmp_path / "input").mkdir()
    with pytest.raises(VfikitError, match="neither input/ \\+ gt/"):
        MiddleburyOthers(tmp_path)
    with pytest.raises(VfikitError, match="directory not found"):
        MiddleburyOthers(tmp_path / "nope")


def test_middlebury_refuses_ambiguous_root(tmp_path):
    make_middlebury_cdfi(tmp_path, seqs=("A",))
    png(tmp_path / "other-data" / "A" / "frame10.png")
    (tmp_path / "other-gt-interp").mkdir()
    with pytest.raises(VfikitError, match="both layouts"):
        MiddleburyOthers(tmp_path)
    assert MiddleburyOthers(tmp_path, layout="cdfi").keys == ["A"]


def test_frames_of_different_sizes_are_reported(tmp_path):
    png(tmp_path / "input" / "A" / "frame10.png", 10, 8)
    png(tmp_path / "input" / "A" / "frame11.png", 12, 8)
    png(tmp_path / "gt" / "A" / "frame10i11.png", 10, 8)
    ds = MiddleburyOthers(tmp_path)
    with pytest.raises(VfikitError, match="different sizes"):
        ds[0]


# ---------------------------------------------------------------- DAVIS

def test_davis_layout_and_missing_gt(tmp_path):
    arrays = {}
    for s in ("car-turn", "bear"):
        arrays[s] = (png(tmp_path / "input" / s / "frame10.png"), png(tmp_path / "input" / s / "frame11.png"),
                     png(tmp_path / "gt" / s / "frame10i11.png"))
    ds = DavisTriplets(tmp_path)
    assert ds.keys == ["bear", "car-turn"]
    assert_sample(ds[1], *arrays["car-turn"], "car-turn")
    (tmp_path / "input" / "bear" / "frame10.png").unlink()
    with pytest.raises(VfikitError, match=r"bear/frame10.png"):
        open_benchmark("davis", tmp_path)


# ---------------------------------------------------------------- UCF101-DVF

def test_ucf101_numeric_order_and_ignored_extra_files(tmp_path):
    arrays = {}
    for i in ("1", "21", "11", "2"):
        d = tmp_path / i
        arrays[i] = (png(d / "frame_00.png"), png(d / "frame_02.png"), png(d / "frame_01_gt.png"))
        png(d / "frame_01_ours.png")
    ds = UCF101DVF(tmp_path)
    assert ds.keys == ["1", "2", "11", "21"]
    assert_sample(ds[2], *arrays["11"], "11")


def test_ucf101_missing_file(tmp_path):
    png(tmp_path / "1" / "frame_00.png")
    png(tmp_path / "1" / "frame_01_gt.png")
    with pytest.raises(VfikitError, match=r"frame_02.png"):
        UCF101DVF(tmp_path)
    with pytest.raises(VfikitError, match="no sample folders"):
        UCF101DVF(tmp_path / "1")


# ---------------------------------------------------------------- Vimeo-90K

def make_vimeo(root: Path, entries, list_name="tri_testlist.txt", trailing="\n\n") -> dict:
    arrays = {}
    for e in entries:
        d = root / "sequences" / e
        arrays[e] = (png(d / "im1.png"), png(d / "im3.png"), png(d / "im2.png"))
    (root / list_name).write_text("\n".join(entries) + trailing)
    return arrays


def test_vimeo_test_split_skips_blank_lines(tmp_path):
    arrays = make_vimeo(tmp_path, ["00001/0389", "00002/0010"])
    ds = Vimeo90KTriplet(tmp_path)
    assert ds.split == "test"
    assert ds.keys == ["00001/0389", "00002/0010"]
    assert_sample(ds[0], *arrays["00001/0389"], "00001/0389")  # im1, im3 inputs; im2 target


def test_vimeo_train_split_is_deterministic(tmp_path):
    make_vimeo(tmp_path, ["00003/0001"], list_name="tri_trainlist.txt", trailing="\n")
    ds = open_benchmark("vimeo90k", tmp_path, split="train")
    a, b = ds[0], ds[0]
    assert torch.equal(a.frame0, b.frame0) and torch.equal(a.target, b.target)
    with pytest.raises(VfikitError, match=r"tri_testlist.txt"):
        Vimeo90KTriplet(tmp_path, split="test")


def test_vimeo_errors(tmp_path):
    make_vimeo(tmp_path, ["00001/0389"])
    (tmp_path / "sequences" / "00001" / "0389" / "im2.png").unlink()
    with pytest.raises(VfikitError, match=r"0389/im2.png"):
        Vimeo90KTriplet(tmp_path)
    (tmp_path / "tri_testlist.txt").write_text("00001/0389\nnot a valid entry\n")
    with pytest.raises(VfikitError, match="malformed line 2"):
        Vimeo90KTriplet(tmp_path)
    with pytest.raises(VfikitError, match="unknown split"):
        Vimeo90KTriplet(tmp_path, split="val")


# ---------------------------------------------------------------- SNU-FILM

def make_snufilm(root: Path, mode: str, prefix: str) -> dict:
    arrays = {}
    lines = []
    for clip in ("GOPR0384_11_00", "GOPR0385_11_01"):
        rel = [f"test/GOPRO_test/{clip}/{k:06d}.png" for k in (1, 5, 9)]
        a = [png(root / r) for r in rel]
        arrays[rel[1]] = (a[0], a[2], a[1])
        lines.append(" ".join(prefix + r for r in rel))
    (root / f"test-{mode}.txt").write_text("\n".join(lines) + "\n")
    return arrays


def test_snufilm_resolves_cain_style_paths(tmp_path):
    arrays = make_snufilm(tmp_path, "hard", "data/SNU-FILM/")
    ds = SNUFILM(tmp_path, mode="hard")
    key = "test/GOPRO_test/GOPR0385_11_01/000005.png"
    assert ds.keys[1] == key
    assert_sample(ds[1], *arrays[key], key)  # first and third paths are inputs, the middle one the target


def test_snufilm_relative_paths_and_errors(tmp_path):
    make_snufilm(tmp_path, "easy", "")
    assert len(open_benchmark("snufilm", tmp_path, split="easy")) == 2
    with pytest.raises(VfikitError, match=r"test-extreme.txt"):
        SNUFILM(tmp_path, mode="extreme")
    with pytest.raises(VfikitError, match="unknown difficulty"):
        SNUFILM(tmp_path, mode="insane")
    (tmp_path / "test/GOPRO_test/GOPR0385_11_01/000009.png").unlink()
    with pytest.raises(VfikitError, match=r"GOPR0385_11_01/000009.png"):
        SNUFILM(tmp_path, mode="easy")
    (tmp_path / "test-medium.txt").write_text("a.png b.png\n")
    with pytest.raises(VfikitError, match="malformed line 1"):
        SNUFILM(tmp_path, mode="medium")


def test_open_benchmark_rejects_bad_names(tmp_path):
    with pytest.raises(VfikitError, match="unknown dataset"):
        open_benchmark("kitti", tmp_path)
    with pytest.raises(VfikitError, match="has no splits"):
        open_benchmark("middlebury", tmp_path, split="test")
