"""vfikit.bench and `vfikit bench`: MAC counting, timing statistics, a tiny smoke run."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from vfikit import cli
from vfikit.bench import (
    BenchCase,
    BenchSettings,
    count_macs,
    count_parameters,
    parse_size,
    run_case,
    run_case_isolated,
    time_calls,
    to_markdown,
)
from vfikit.errors import VfikitError
from vfikit.ops import adacof, dsepconv, functional, sepconv


class TinyKernelNet(nn.Module):
    """One conv, a transposed conv, a linear layer and one call of each sampling op."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.grouped = nn.Conv2d(4, 4, 3, padding=1, groups=2)
        self.up = nn.ConvTranspose2d(4, 2, 2, stride=2)
        self.fc = nn.Linear(5, 7)

    def forward(self, x):
        n, _, h, w = x.shape
        y = self.up(self.grouped(self.conv(x)))
        self.fc(torch.zeros(n, 5))
        taps = torch.ones(n, 9, h, w) / 9
        zeros = torch.zeros(n, 9, h, w)
        ones = torch.ones(n, 3, h, w)
        a = adacof(x, taps, zeros, zeros, convention="clean", backend="torch")  # torch: no numba compile here
        b = dsepconv(x, ones, ones, zeros, zeros, taps, convention="clean", backend="torch")
        c = sepconv(x, torch.ones(n, 5, h, w), torch.ones(n, 5, h, w), convention="clean", backend="torch")
        return y, a + b + c


def test_count_macs_by_hand():
    net = TinyKernelNet()
    h, w = 6, 8
    with count_macs(net) as counter:
        net(torch.rand(1, 3, h, w))
    px = h * w
    assert counter.by_kind["conv"] == px * 4 * 3 * 9 + px * 4 * 2 * 9 + px * 4 * 2 * 2 * 2
    assert counter.by_kind["linear"] == 7 * 5
    assert counter.by_kind["adacof"] == 3 * px * 9 * 5  # 9 taps x (4 bilinear + 1 weight) per output value
    assert counter.by_kind["dsepconv"] == 3 * px * 9 * 5
    assert counter.by_kind["sepconv"] == 3 * px * 25
    assert counter.total == sum(counter.by_kind.values())
    # hooks and the op wrapper are gone afterwards
    assert functional.check_tensors.__name__ == "check_tensors"
    with count_macs(nn.Identity()) as other:  # hooks belong to the counted model; ops are seen globally
        net(torch.rand(1, 3, h, w))
    assert "conv" not in other.by_kind and other.by_kind["sepconv"] == 3 * px * 25
    assert count_parameters(net) == sum(p.numel() for p in net.parameters())


def test_time_calls_statistics():
    calls = []
    stats = time_calls(lambda: calls.append(1), BenchSettings(warmup=2, repeats=5, min_repeats=3))
    assert len(calls) == 7 and stats["runs"] == 5 == len(stats["times_s"])
    assert stats["q25_s"] <= stats["median_s"] <= stats["q75_s"]
    assert stats["iqr_s"] == pytest.approx(stats["q75_s"] - stats["q25_s"])
    assert stats["median_s"] == pytest.approx(sorted(stats["times_s"])[2])
    # a time budget of 0 s still gives min_repeats runs
    calls.clear()
    stats = time_calls(lambda: calls.append(1), BenchSettings(warmup=0, repeats=50, min_repeats=3, max_seconds=0))
    assert stats["runs"] == 3


def test_parse_size():
    assert parse_size("1280x720") == (1280, 720)
    for bad in ("1280", "0x5", "axb", "12x12x3"):
        with pytest.raises(VfikitError, match="WIDTHxHEIGHT"):
            parse_size(bad)


def test_run_case_in_process_and_isolated():
    settings = BenchSettings(warmup=1, repeats=3, min_repeats=3)
    r = run_case(BenchCase("overlay", 24, 16), settings)
    assert r["params"] == 0 and r["macs"] == 0 and r["runs"] == 3
    assert r["fps"] > 0 and r["peak_memory_mb"] > 0 and r["family"] == "classical"
    iso = run_case_isolated(BenchCase("flow_dis", 32, 24), settings)
    assert "error" not in iso, iso.get("error")
    assert iso["uncounted"] and iso["peak_memory_mb"] > 50  # a fresh python + torch process
    bad = run_case_isolated(BenchCase("flow_dis", 32, 24, model_args={"preset": "slow"}), settings)
    assert "unknown DIS preset" in bad["error"]
    md = to_markdown({"machine": {"cpu": "x", "logical_cpus": 1, "torch": "t", "date": "d"},
                      "settings": settings.__dict__, "isolated": True, "results": [r, bad]})
    assert "| overlay | cpu | 24x16 | 0 | 0 |" in md and "error:" in md


def test_cli_bench_writes_json_and_markdown(tmp_path, capsys):
    argv = ["bench", "--models", "overlay", "--sizes", "32x24", "--devices", "cpu", "--quick", "--in-process",
            "--out", str(tmp_path), "--name", "smoke"]
    assert cli.main(argv) == 0
    data = json.loads((tmp_path / "smoke.json").read_text())
    assert [(r["model"], r["width"], r["height"]) for r in data["results"]] == [("overlay", 32, 24)]
    assert data["results"][0]["runs"] == 3
    assert "| overlay | cpu | 32x24 |" in (tmp_path / "smoke.md").read_text()
    assert cli.main(argv) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert cli.main(["bench", "--models", "nosuchmodel", "--quick"]) == 2
    assert cli.main(["bench", "--models", "overlay", "--sizes", "32", "--quick"]) == 2


def test_precision_setting_runs_the_timed_calls_under_autocast(monkeypatch):
    import torch

    import vfikit.hub
    from vfikit.runtime import cpu_bf16_faster

    class Recorder(torch.nn.Module):
        cpu_bf16 = True  # declares bf16 safe, as the flow-guided models do

        def __init__(self):
            super().__init__()
            self.seen = []

        def forward(self, frame0, frame1):
            self.seen.append(torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu"))
            return (frame0 + frame1) / 2

    made = []
    monkeypatch.setattr(vfikit.hub, "create_model", lambda *a, **k: made.append(Recorder()) or made[-1])
    settings = BenchSettings(warmup=1, repeats=3, min_repeats=3)
    r = run_case(BenchCase("overlay", 24, 16), settings)
    assert r["precision"] == "fp32" and not any(made[-1].seen)
    r = run_case(BenchCase("overlay", 24, 16), BenchSettings(**{**settings.__dict__, "precision": "bf16"}))
    assert r["precision"] == "bf16" and made[-1].seen[1:] == [torch.bfloat16] * 4  # (the MAC count runs plain)
    r = run_case(BenchCase("overlay", 24, 16), BenchSettings(**{**settings.__dict__, "precision": "auto"}))
    assert r["precision"] == ("bf16" if cpu_bf16_faster() else "fp32")
    md = to_markdown({"machine": {"cpu": "x", "logical_cpus": 1, "torch": "t", "date": "d"},
                      "settings": settings.__dict__, "isolated": False, "results": [r]})
    assert f"| overlay | {'cpu (bf16)' if cpu_bf16_faster() else 'cpu'} | 24x16 |" in md
