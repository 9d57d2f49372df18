"""Which model the video tool picks without --model: by device, among the weights that ship."""

from __future__ import annotations

from pathlib import Path

import pytest

from vfikit.errors import VfikitError
from vfikit.video import defaults


def _shipping(monkeypatch, *archs: str) -> None:
    files = {f"{a}.vfikit" for a in archs}
    monkeypatch.setattr(defaults, "packaged_weights", lambda name: Path("/x") / name if name in files else None)


def test_cpu_prefers_the_fast_guided_model_and_gpu_prefers_cdfi(monkeypatch):
    _shipping(monkeypatch, "guided_adacof_k5", "compressed_adacof_k5_d1", "cdfi")
    assert defaults.default_model("cpu") == "guided_adacof_k5.vfikit"
    assert defaults.default_model("cuda:0") == "cdfi.vfikit"


def test_falls_back_to_what_ships(monkeypatch):
    _shipping(monkeypatch, "guided_adacof_k5")
    assert defaults.default_model("cuda") == "guided_adacof_k5.vfikit"
    _shipping(monkeypatch, "cdfi")
    assert defaults.default_model("cpu") == "cdfi.vfikit"


def test_no_weights_means_a_clear_error_asking_for_a_model(monkeypatch):
    _shipping(monkeypatch)
    with pytest.raises(VfikitError, match="--model"):
        defaults.default_model("cpu")


def test_the_default_hands_large_frames_to_its_speed_option_when_it_ships():
    from vfikit.runtime import packaged_weights

    if packaged_weights("guided_adacof_k5.vfikit") is None or packaged_weights("guided_adacof_k5_fast.vfikit") is None:
        pytest.skip("the two guided models' weights do not ship in this checkout")
    ip = defaults.build_interpolator(None, precision="fp32")
    side, large = ip.large_frames
    assert side == 720 and large.vfikit_arch == "guided_adacof_k5_fast" and ip.model.vfikit_arch == "guided_adacof_k5"
    assert ip.model_for(719, 1280) is ip.model and ip.model_for(720, 1280) is large
    assert "guided_adacof_k5_fast for frames of 720 px" in defaults.describe_interpolator(ip)
    named = defaults.build_interpolator("guided_adacof_k5.vfikit", precision="fp32")  # --model: that model only
    assert named.large_frames is None and named.model_for(1080, 1920) is named.model
    assert defaults.describe_interpolator(named) == "guided_adacof_k5"


def test_the_job_says_when_large_frames_run_the_other_model(capsys):
    import torch

    from vfikit.inference import Interpolator
    from vfikit.video.jobs import _check_model_size

    ip = Interpolator(torch.nn.Identity(), device="cpu", large_frames=(720, torch.nn.Identity()))
    _check_model_size(ip, (1280, 719))
    assert "720 px" not in capsys.readouterr().err
    _check_model_size(ip, (1280, 720))
    assert "frames are 1280x720: interpolated by Identity" in capsys.readouterr().err
