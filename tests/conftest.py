"""Shared test helpers: the ../shared folder (skipped when absent) and random-input factories."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def shared_path(*parts: str) -> Path:
    """A path under ../shared, or skip the test with the reason when it is not there."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs {path} (the shared data/reference folder beside the repository)")
    return path


@pytest.fixture(autouse=True, scope="session")
def _own_cache_dir(tmp_path_factory):
    """vfikit's cache (weights, the measured CPU precision) in a temporary folder: tests never read or write the
    user's ``~/.cache/vfikit``."""
    import os

    before = os.environ.get("VFIKIT_CACHE_DIR")
    os.environ["VFIKIT_CACHE_DIR"] = str(tmp_path_factory.mktemp("vfikit_cache"))
    yield
    if before is None:
        os.environ.pop("VFIKIT_CACHE_DIR", None)
    else:
        os.environ["VFIKIT_CACHE_DIR"] = before


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


@pytest.fixture
def tiny_models():
    """The tiny training-test models (tests/_train_models.py) in the model catalog for one test only."""
    from tests._train_models import tiny_models as registered

    with registered():
        yield


@pytest.fixture
def blend():
    """A weight-free interpolator that blends the two frames (tests/video_helpers.py), for the timeline and
    video tests."""
    from tests.video_helpers import BlendInterpolator

    return BlendInterpolator()
