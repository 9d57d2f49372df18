"""`vfikit eval` and vfikit.engine.evaluate: fake layouts, report files, and the real Middlebury check."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from vfikit import cli
from vfikit.data.middlebury import MiddleburyOthers
from vfikit.data.triplet import Triplet
from vfikit.engine.evaluate import evaluate, write_report
from vfikit.errors import VfikitError
from vfikit.hub import create_model
from vfikit.models.base import VFIModel
from vfikit.runtime import sha256_file

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
MIDDLEBURY = SHARED / "data" / "middlebury_others"


def write_fake_middlebury(root: Path, seqs=("Alpha", "Beta"), h=12, w=16) -> None:
    rng = np.random.default_rng(3)
    for s in seqs:
        for rel in (f"input/{s}/frame10.png", f"input/{s}/frame11.png", f"gt/{s}/frame10i11.png"):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / rel)


def read_u8(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def independent_metrics(pred_hwc: np.ndarray, gt_u8: np.ndarray) -> dict[str, float]:
    """Spec section 8 written out: round half up to uint8, read back as float32, skimage calls, IE by hand."""
    q = np.clip(np.floor(pred_hwc.astype(np.float32) * 255 + 0.5), 0, 255).astype(np.uint8)
    out = q.astype(np.float32) / 255
    gt = gt_u8.astype(np.float32) / 255
    diff = q.astype(np.float64) - gt_u8.astype(np.float64)
    return {
        "psnr": peak_signal_noise_ratio(gt.transpose(2, 0, 1), out.transpose(2, 0, 1), data_range=1),
        "ssim": structural_similarity(gt.astype(np.float64), out.astype(np.float64), data_range=1, channel_axis=-1),
        "ie": math.sqrt(np.mean(np.sum(diff**2, axis=2))),
        "png": q,
    }


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_cli_eval_on_fake_middlebury_writes_csv_json_and_outputs(tmp_path, capsys):
    root = tmp_path / "mb"
    write_fake_middlebury(root)
    out, saved = tmp_path / "report", tmp_path / "frames"
    code = cli.main(["eval", "--model", "overlay", "--dataset", "middlebury", "--root", str(root),
                     "--out", str(out), "--save-outputs", str(saved), "--device", "cpu", "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "Alpha" in printed and "mean" in printed
    rows = read_csv(out / "per_sample.csv")
    assert [r["key"] for r in rows] == ["Alpha", "Beta"]
    for r in rows:
        seq = r["key"]
        f0, f1 = (read_u8(root / f"input/{seq}/frame1{k}.png").astype(np.float32) / 255 for k in (0, 1))
        ref = independent_metrics((f0 + f1) / 2, read_u8(root / f"gt/{seq}/frame10i11.png"))
        assert float(r["psnr"]) == pytest.approx(ref["psnr"], abs=1e-4)
        assert float(r["ssim"]) == pytest.approx(ref["ssim"], abs=1e-9)
        assert float(r["ie"]) == pytest.approx(ref["ie"], abs=1e-9)
        assert float(r["t"]) == 0.5 and float(r["seconds"]) >= 0
        assert np.array_equal(read_u8(saved / f"{seq}.png"), ref["png"])  # the kept prediction
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"] == "overlay" and summary["weights_sha256"] is None
    assert summary["dataset"]["name"] == "middlebury" and summary["dataset"]["evaluated"] == 2
    assert summary["device"]["device"] == "cpu"
    assert summary["protocol"]["deterministic"] is True and "psnr" in summary["protocol"]
    for m in ("psnr", "ssim", "ie"):
        assert summary["metrics"][m] == pytest.approx(np.mean([float(r[m]) for r in rows]), rel=1e-12)
    assert summary["seconds_per_frame"]["mean"] > 0

    # nothing is overwritten without --force
    again = ["eval", "--model", "overlay", "--dataset", "middlebury", "--root", str(root), "--out", str(out), "--quiet"]
    assert cli.main(again) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert cli.main([*again, "--force", "--limit", "1"]) == 0
    assert len(read_csv(out / "per_sample.csv")) == 1


def test_cli_eval_with_lpips_weights(tmp_path):
    from tests.helpers import random_lpips_weights

    root = tmp_path / "mb"
    write_fake_middlebury(root, seqs=("A",), h=40, w=48)
    backbone, lins = random_lpips_weights()
    torch.save(backbone, tmp_path / "squeezenet1_1.pth")
    torch.save(lins, tmp_path / "squeeze.pth")
    out = tmp_path / "report"
    code = cli.main(["eval", "--model", "overlay", "--dataset", "middlebury", "--root", str(root), "--quiet",
                     "--metrics", "psnr", "--lpips-weights", str(tmp_path / "squeezenet1_1.pth"),
                     str(tmp_path / "squeeze.pth"), "--out", str(out)])
    assert code == 0
    row = read_csv(out / "per_sample.csv")[0]
    assert set(row) == {"key", "t", "psnr", "lpips", "lpips_cdfi", "seconds"}
    assert float(row["lpips"]) > 0 and float(row["lpips_cdfi"]) > 0
    assert "lpips_cdfi" in json.loads((out / "summary.json").read_text())["protocol"]


def test_cli_eval_user_errors(tmp_path, capsys):
    root = tmp_path / "mb"
    write_fake_middlebury(root)
    base = ["eval", "--model", "overlay", "--dataset", "middlebury", "--quiet"]
    assert cli.main([*base, "--root", str(tmp_path / "missing")]) == 2
    assert "directory not found" in capsys.readouterr().err
    assert cli.main([*base, "--root", str(root), "--weights", str(tmp_path / "w.pth")]) == 2
    assert "weights file not found" in capsys.readouterr().err
    assert cli.main([*base, "--root", str(root), "--metrics", "lpips"]) == 2
    assert "--lpips-weights" in capsys.readouterr().err
    assert cli.main([*base, "--root", str(root), "--lpips-weights", str(tmp_path / "sq.pth")]) == 2
    assert "LPIPS weights file not found" in capsys.readouterr().err
    assert cli.main(["eval", "--model", "overlai", "--dataset", "middlebury", "--root", str(root)]) == 2
    assert "did you mean overlay" in capsys.readouterr().err
    (root / "gt" / "Beta" / "frame10i11.png").unlink()
    assert cli.main([*base, "--root", str(root)]) == 2
    assert "frame10i11.png" in capsys.readouterr().err


def test_cli_eval_refuses_an_untrained_network_unless_allowed(tmp_path, capsys):
    root = tmp_path / "mb"
    write_fake_middlebury(root, seqs=("A",), h=32, w=32)
    base = ["eval", "--model", "compressed_adacof_k5_d1", "--dataset", "middlebury", "--root", str(root), "--quiet",
            "--device", "cpu"]
    assert cli.main(base) == 2
    err = capsys.readouterr().err
    assert "no trained weights" in err and "--weights" in err and "Traceback" not in err
    assert cli.main([*base, "--allow-untrained"]) == 0


class HalfOnly(VFIModel):
    """A t = 0.5-only model (returns frame0), to check t handling."""

    def forward(self, frame0, frame1, t=None, return_aux=False):
        assert t is None  # evaluate must not pass t to a model without arbitrary_t
        return frame0


def test_evaluate_library_api(tmp_path):
    g = torch.Generator().manual_seed(0)
    frames = [torch.rand(3, 10, 12, generator=g) for _ in range(3)]
    data = [Triplet(frames[0], frames[1], frames[0], 0.5, "a"), Triplet(frames[0], frames[1], frames[2], 0.5, "b")]
    report = evaluate(HalfOnly(), data, metrics=["psnr"], device="cpu", progress=False)
    assert report.rows[0]["psnr"] == math.inf  # prediction equals the target
    assert math.isfinite(report.rows[1]["psnr"])
    paths = write_report(report, tmp_path)
    assert json.loads(paths[1].read_text())["metrics"]["psnr"] == "inf"  # strict JSON has no Infinity
    with pytest.raises(VfikitError, match="exists"):
        write_report(report, tmp_path)

    with pytest.raises(VfikitError, match=r"only computes t = 0\.5"):
        evaluate(HalfOnly(), [Triplet(frames[0], frames[1], frames[2], 0.25, "c")], progress=False)
    # a plain callable (e.g. an Interpolator) receives t and (1, 3, H, W) frames
    seen = []
    report = evaluate(lambda a, b, t: seen.append(t) or (a * (1 - t) + b * t),
                      [Triplet(frames[0], frames[1], frames[2], 0.25, "c")], metrics=["ie"], progress=False)
    assert seen == [0.25] and len(report.rows) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised where CUDA is absent")
def test_evaluate_refuses_missing_cuda():
    frame = torch.zeros(3, 8, 8)
    with pytest.raises(VfikitError, match="CUDA is not available"):
        evaluate(HalfOnly(), [Triplet(frame, frame, frame)], device="cuda", progress=False)
    with pytest.raises(VfikitError, match="unknown device 'gpu0'"):
        evaluate(HalfOnly(), [Triplet(frame, frame, frame)], device="gpu0", progress=False)


def test_saved_output_names(tmp_path):
    from vfikit.engine.evaluate import _output_path

    assert _output_path(tmp_path, "Beanbags", 0) == tmp_path / "Beanbags.png"
    assert _output_path(tmp_path, "00001/0389", 0) == tmp_path / "00001" / "0389.png"
    assert _output_path(tmp_path, "test/GOPRO_test/clip/000005.png", 0) == tmp_path / "test/GOPRO_test/clip/000005.png"
    assert _output_path(tmp_path, "../escape", 7) == tmp_path / "000007.png"


def test_sha256_file(tmp_path):
    p = tmp_path / "w.bin"
    p.write_bytes(b"abc")
    assert sha256_file(p) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


@pytest.mark.skipif(not MIDDLEBURY.is_dir(), reason=f"shared Middlebury data not found at {MIDDLEBURY}")
@pytest.mark.parametrize("model_name", ["overlay", "flow_dis"])
def test_vfikit_eval_reproduces_an_independent_middlebury_evaluation(model_name, tmp_path):
    """The 'Done when' check: `vfikit eval` numbers equal a straightforward computation done here."""
    out = tmp_path / "report"
    code = cli.main(["eval", "--model", model_name, "--dataset", "middlebury", "--root", str(MIDDLEBURY),
                     "--out", str(out), "--device", "cpu", "--quiet"])
    assert code == 0
    rows = {r["key"]: r for r in read_csv(out / "per_sample.csv")}
    seqs = sorted(p.name for p in (MIDDLEBURY / "gt").iterdir() if p.is_dir())
    assert list(rows) == seqs and len(seqs) == 12
    model = create_model(model_name)
    ours = {"psnr": [], "ssim": [], "ie": []}
    for seq in seqs:
        f0 = read_u8(MIDDLEBURY / "input" / seq / "frame10.png").astype(np.float32) / 255
        f1 = read_u8(MIDDLEBURY / "input" / seq / "frame11.png").astype(np.float32) / 255
        gt = read_u8(MIDDLEBURY / "gt" / seq / "frame10i11.png")
        if model_name == "overlay":
            pred = (f0 + f1) / 2
        else:
            with torch.no_grad():
                x0, x1 = (torch.from_numpy(f).permute(2, 0, 1)[None] for f in (f0, f1))
                pred = model(x0, x1)[0].permute(1, 2, 0).numpy()
        ref = independent_metrics(pred, gt)
        assert float(rows[seq]["psnr"]) == pytest.approx(ref["psnr"], abs=1e-4), seq
        assert float(rows[seq]["ssim"]) == pytest.approx(ref["ssim"], abs=1e-9), seq
        assert float(rows[seq]["ie"]) == pytest.approx(ref["ie"], abs=1e-9), seq
        for m in ours:
            ours[m].append(ref[m])
    summary = json.loads((out / "summary.json").read_text())
    for m, values in ours.items():
        assert summary["metrics"][m] == pytest.approx(float(np.mean(values)), abs=1e-4 if m == "psnr" else 1e-9)
    assert summary["dataset"]["samples"] == 12


def test_middlebury_loader_reads_the_shared_copy():
    if not MIDDLEBURY.is_dir():
        pytest.skip(f"shared Middlebury data not found at {MIDDLEBURY}")
    ds = MiddleburyOthers(MIDDLEBURY)
    assert ds.keys[0] == "Beanbags" and ds.keys[-1] == "Walking"
    venus = ds[ds.keys.index("Venus")]
    assert venus.frame0.shape == (3, 380, 420)  # W x H = 420 x 380 per the spec


def test_cli_eval_records_the_precision_it_ran_at(tmp_path):
    root = tmp_path / "mb"
    write_fake_middlebury(root, seqs=("Alpha",))
    for precision in ("fp32", "bf16"):
        out = tmp_path / precision
        assert cli.main(["eval", "--model", "overlay", "--dataset", "middlebury", "--root", str(root), "--out",
                         str(out), "--device", "cpu", "--quiet", "--precision", precision]) == 0
        assert json.loads((out / "summary.json").read_text())["device"]["precision"] == precision
    # auto resolves per model: overlay has no network, so fp32
    out = tmp_path / "auto"
    assert cli.main(["eval", "--model", "overlay", "--dataset", "middlebury", "--root", str(root), "--out",
                     str(out), "--device", "cpu", "--quiet", "--precision", "auto"]) == 0
    assert json.loads((out / "summary.json").read_text())["device"]["precision"] == "fp32"
    with pytest.raises(SystemExit):
        cli.main(["eval", "--model", "overlay", "--dataset", "middlebury", "--root", str(root), "--precision", "fp8"])
