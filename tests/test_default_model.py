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
    _shipping(monkeypatch, "guided_adacof_k5_fast", "guided_adacof_k5", "compressed_adacof_k5_d1", "cdfi")
    assert defaults.default_model("cpu") == "guided_adacof_k5_fast.vfikit"
    assert defaults.default_model("cuda:0") == "cdfi.vfikit"
    _shipping(monkeypatch, "guided_adacof_k5", "compressed_adacof_k5_d1")
    assert defaults.default_model("cpu") == "guided_adacof_k5.vfikit"


def test_falls_back_to_what_ships(monkeypatch):
    _shipping(monkeypatch, "guided_adacof_k5")
    assert defaults.default_model("cuda") == "guided_adacof_k5.vfikit"
    _shipping(monkeypatch, "cdfi")
    assert defaults.default_model("cpu") == "cdfi.vfikit"


def test_no_weights_means_a_clear_error_asking_for_a_model(monkeypatch):
    _shipping(monkeypatch)
    with pytest.raises(VfikitError, match="--model"):
        defaults.default_model("cpu")


def test_the_default_runs_one_model_at_every_frame_size_and_bare_names_run_their_shipped_weights():
    from vfikit.runtime import packaged_weights

    if packaged_weights("guided_adacof_k5_fast.vfikit") is None or packaged_weights("guided_adacof_k5.vfikit") is None:
        pytest.skip("the two guided models' weights do not ship in this checkout")
    ip = defaults.build_interpolator(None, precision="fp32")
    assert ip.model.vfikit_arch == "guided_adacof_k5_fast" and ip.large_frames is None
    assert ip.model_for(1080, 1920) is ip.model and defaults.describe_interpolator(ip) == "guided_adacof_k5_fast"
    # the old default stays reachable by name, with or without its tag: a bare name runs the weights that ship
    for name in ("guided_adacof_k5.vfikit", "guided_adacof_k5"):
        named = defaults.build_interpolator(name, precision="fp32")
        assert named.model.vfikit_arch == "guided_adacof_k5" and named.model.vfikit_weights
    untrained = defaults.build_interpolator("guided_adacof_k5", precision="fp32", allow_untrained=True)
    assert not getattr(untrained.model, "vfikit_weights", None)  # --allow-untrained keeps the bare network


def test_the_job_says_when_large_frames_run_the_other_model(capsys):
    import torch

    from vfikit.inference import Interpolator
    from vfikit.video.jobs import _check_model_size

    ip = Interpolator(torch.nn.Identity(), device="cpu", large_frames=(720, torch.nn.Identity()))
    _check_model_size(ip, (1280, 719))
    assert "720 px" not in capsys.readouterr().err
    _check_model_size(ip, (1280, 720))
    assert "frames are 1280x720: interpolated by Identity" in capsys.readouterr().err
