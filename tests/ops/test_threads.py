"""The row thread pool of the compiled forward kernels: every row once, and usable after a fork."""

from __future__ import annotations

import multiprocessing
import sys

import numpy as np
import pytest
import torch

from vfikit.ops import _threads


def test_run_rows_covers_every_row_once(monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)
    seen = np.zeros(101, np.int64)

    def call(lo: int, hi: int) -> None:
        seen[lo:hi] += 1

    _threads.run_rows(101, call)
    assert (seen == 1).all()
    _threads.run_rows(0, call)  # no rows: nothing to do
    assert (seen == 1).all()


def _child(queue) -> None:
    out = []
    _threads.run_rows(10, lambda lo, hi: out.append((lo, hi)))
    queue.put(sorted(out)[0][0] == 0 and sum(hi - lo for lo, hi in out) == 10)


@pytest.mark.skipif(sys.platform == "win32", reason="fork is POSIX only")
def test_run_rows_after_fork(monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    _threads.run_rows(4, lambda lo, hi: None)  # the parent's pool exists before the fork
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child, args=(queue,))
    child.start()
    child.join(60)
    assert child.exitcode == 0 and queue.get(timeout=5)
