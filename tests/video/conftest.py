"""Fixtures for the video tool tests (helpers live in video_helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest
from tests.video_helpers import TEST_MODELS, BlendNet

from vfikit.models.catalog import registered


@pytest.fixture
def models() -> Iterator[list[tuple[int, float]]]:
    """Registers the test models for this test (the CLI finds them by name); yields the shared call log."""
    BlendNet.calls.clear()
    BlendNet.kill_after = None
    with ExitStack() as stack:
        for name, factory, info in TEST_MODELS:
            stack.enter_context(registered(name, factory, family="test", **info))
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
