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
