"""`vfikit ui --host`: an address that cannot be used is a one-line error, not a raw [Errno -2] (issue 25)."""

from __future__ import annotations

import importlib.util

import pytest

from vfikit.cli import main

pytestmark = pytest.mark.skipif(importlib.util.find_spec("gradio") is None,
                                reason='vfikit ui needs Gradio: pip install "vfikit[ui]"')


@pytest.mark.parametrize(("host", "match"), [("256.1.1.1", "not an IP address or a host name"),
                                             ("192.0.2.1", "cannot listen on 192.0.2.1")])
def test_an_unusable_host_is_a_clear_error(capsys, host, match):
    assert main(["ui", "--host", host]) == 2
    err = capsys.readouterr().err
    assert match in err and "Errno" not in err and len(err.strip().splitlines()) == 1, err
