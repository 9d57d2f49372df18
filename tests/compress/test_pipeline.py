"""``vfikit compress`` end to end on a narrow AdaCoF and synthetic data."""

from __future__ import annotations

import json
import math

import pytest
import yaml

from tests.helpers import SMALL_ADACOF as SMALL
from vfikit.cli import main
from vfikit.config import config_from_dict
from vfikit.engine.train import train


def _base(tmp_path) -> dict:
    return {
        "model": {"arch": "adacof_k5_d1", "args": {"kernel_size": 3, "channels": SMALL}},
        "data": {"train": [{"type": "synthetic", "seed": 0, "max_translation": 3.0, "objects": [0, 2]}],
                 "val": [{"type": "synthetic", "seed": 77, "max_translation": 3.0, "objects": [0, 2]}],
                 "crop": 32, "batch_size": 2, "val_samples": 4, "val_crop": 32},
        "loss": [{"name": "charbonnier", "weight": 1.0}],
        "optim": {"name": "adamax", "lr": 1e-3},
        "train": {"steps": 4, "log_every": 2, "val_every": 4, "ckpt_every": 4, "threads": 1, "tensorboard": False,
                  "out_dir": str(tmp_path / "pretrain")},
    }


def _pretrained_base(tmp_path) -> str:
    """Train the narrow AdaCoF briefly and write a base config that starts from it; returns its path."""
    base = _base(tmp_path)
    train(config_from_dict(base), log=lambda _m: None)
    base["model"]["init"] = str(tmp_path / "pretrain" / "best.pt")
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    return str(tmp_path / "base.yaml")


@pytest.mark.slow
def test_compress_cuts_parameters_exactly_then_fine_tunes(tmp_path, capsys):
    comp = {
        "base": _pretrained_base(tmp_path),
        "out_dir": str(tmp_path / "comp"),
        "sparsify": {"steps": 6, "optim": {"name": "obproxsg", "lr": 0.05, "lambda_": 2.0, "n_p": 1,
                                           "epoch_size": 3, "sparsity": "group"}, "schedule": {"name": "constant"}},
        "finetune": {"steps": 4},
        "eval": {"latency_size": [64, 48], "latency_repeats": 1},
    }
    (tmp_path / "comp.yaml").write_text(yaml.safe_dump(comp))
    assert main(["compress", str(tmp_path / "comp.yaml")]) == 0
    out = tmp_path / "comp"
    summary = json.loads((out / "summary.json").read_text())
    rows = {r["model"]: r for r in summary["rows"]}
    assert summary["param_reduction"] >= 5.0
    assert rows["compact"]["params"] == rows["fine-tuned"]["params"] < rows["pretrained"]["params"] / 5
    # the group strategy removes exactly-zero channels: the compact model computes what the sparse one does
    assert rows["compact"]["val_psnr"] == pytest.approx(rows["sparse"]["val_psnr"], abs=1e-4)
    assert rows["compact"]["gmacs"] < rows["pretrained"]["gmacs"]
    for r in rows.values():
        assert math.isfinite(r["val_psnr"]) and r["latency_s"] > 0 and r["peak_mb"] > 0
    report = json.loads((out / "report.json").read_text())
    assert 0 < report["density"] < 1 and any(s["group"] < s["width"] for s in report["sets"])
    spec = json.loads((out / "channel_spec.json").read_text())
    assert spec["format"] == "vfikit-channel-spec" and spec["widths"]["conv1"][0] <= SMALL["conv1"][0]
    printed = capsys.readouterr().out
    assert "| fine-tuned |" in printed and "Parameters cut" in printed
    with capsys.disabled():  # the measured drop, visible with pytest -s
        print(f"PSNR pretrained {rows['pretrained']['val_psnr']:.2f} -> compact {rows['compact']['val_psnr']:.2f} "
              f"-> fine-tuned {rows['fine-tuned']['val_psnr']:.2f} dB, params /{summary['param_reduction']:.1f}")
    # an existing run is never overwritten; --resume skips completed stages
    assert main(["compress", str(tmp_path / "comp.yaml")]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["compress", str(tmp_path / "comp.yaml"), "--resume", "--set", "eval.measure_latency=false"]) == 0
    assert "[1/5] sparsify" not in capsys.readouterr().out


def test_compress_the_papers_way_l1_and_sqrt_density_widths(tmp_path):
    """Element-wise l1 (CDFI's setting) + the paper's sqrt(density) widths: not exact, so fine-tuned."""
    comp = {
        "base": _pretrained_base(tmp_path),
        "out_dir": str(tmp_path / "comp"),
        "sparsify": {"steps": 4, "optim": {"name": "obproxsg", "lr": 0.05, "lambda_": 0.25, "n_p": 2,
                                           "epoch_size": 2, "sparsity": "l1"}, "schedule": {"name": "constant"}},
        "strategy": "paper_max",
        "finetune": {"steps": 2},
        "eval": {"measure_latency": False},
    }
    (tmp_path / "comp.yaml").write_text(yaml.safe_dump(comp))
    assert main(["compress", str(tmp_path / "comp.yaml")]) == 0
    out = tmp_path / "comp"
    summary = json.loads((out / "summary.json").read_text())
    rows = {r["model"]: r for r in summary["rows"]}
    report = json.loads((out / "report.json").read_text())
    # 4 proximal steps soft-threshold by 0.25 * 0.05 * 4 = 0.05, a third of the widest init bound
    assert 0.05 < report["density"] < 0.9
    assert rows["sparse"]["nonzero_params"] == report["nonzero_params"] < 0.9 * rows["pretrained"]["params"]
    widths = json.loads((out / "channel_spec.json").read_text())["widths"]
    narrower = 0
    for s in report["sets"]:  # every set got the report's paper_max width: "conv1[0]", "conv2[2]+upsample2"
        key, index = s["name"].split("+")[0].rstrip("]").split("[")
        assert widths[key][int(index)] == s["paper_max"] <= s["width"]
        narrower += s["paper_max"] < s["width"]
    assert narrower > 0 and rows["compact"]["params"] < rows["pretrained"]["params"]
    assert math.isfinite(rows["fine-tuned"]["val_psnr"])


def test_compress_config_errors(tmp_path):
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({"base": "x.yaml", "strategie": "group"}))
    assert main(["compress", str(tmp_path / "bad.yaml")]) == 2
    (tmp_path / "bad2.yaml").write_text(yaml.safe_dump({"base": "x.yaml", "sparsify": {"optim": {"name": "adamax"}}}))
    assert main(["compress", str(tmp_path / "bad2.yaml")]) == 2


@pytest.mark.parametrize("name", __import__("vfikit.config", fromlist=["list_recipes"]).list_recipes("compress"))
def test_every_packaged_compression_recipe_is_valid(name):
    from vfikit.compress.stages import load_compress_config
    from vfikit.config import list_recipes

    cfg = load_compress_config(name)
    assert cfg.base in list_recipes()  # its base is a packaged training recipe
    assert cfg.sparsify.optim["name"] == "obproxsg"


def test_benchmark_psnr_of_the_evaluation_table(tmp_path):
    """The table's benchmark column is the benchmark's mean PSNR (a real-scale run once failed reading it)."""
    from tests.helpers import as_tensor, make_middlebury_cdfi
    from vfikit.compress.stages import BenchmarkEntry, _benchmark_psnr
    from vfikit.metrics import psnr

    arrays = make_middlebury_cdfi(tmp_path)
    from vfikit.hub import create_model

    overlay = create_model("overlay")
    expected = [psnr((as_tensor(a) + as_tensor(b)) / 2, as_tensor(gt)) for a, b, gt in arrays.values()]
    got = _benchmark_psnr(overlay, BenchmarkEntry(name="middlebury", root=str(tmp_path)), log=print)
    assert got == pytest.approx(sum(expected) / len(expected), abs=1e-6)
    notes = []
    absent = BenchmarkEntry(name="middlebury", root=str(tmp_path / "absent"), optional=True)
    assert _benchmark_psnr(overlay, absent, log=notes.append) is None and "absent" in notes[0]


def test_short_weight_average_warning():
    from vfikit.compress.stages import short_average_warning

    assert short_average_warning(None, 10) is None
    assert short_average_warning(0.99, 1000) is None  # 0.99 ** 1000: the start is forgotten
    note = short_average_warning(0.999, 500)  # 0.999 ** 500 = 0.61
    assert note is not None and "61%" in note and "ema_decay=null" in note
