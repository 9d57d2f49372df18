"""Fixtures for the video tool tests (helpers live in video_helpers.py)."""

from __future__ import annotations

import pytest
from video_helpers import BlendInterpolator, BlendNet


@pytest.fixture
def blend() -> BlendInterpolator:
    return BlendInterpolator()


@pytest.fixture
def models() -> list[tuple[int, float]]:
    """Makes the test models usable from the CLI; returns the shared call log (cleared)."""
    BlendNet.calls.clear()
    BlendNet.kill_after = None
    yield BlendNet.calls
    BlendNet.kill_after = None


@pytest.fixture
def run(capsys):
    """Run ``vfikit interpolate ARGS`` in-process; returns (exit code, stderr)."""
    from vfikit import cli

    def go(*args) -> tuple[int, str]:
        code = cli.main(["interpolate", *map(str, args)])
        return code, capsys.readouterr().err

    return go
