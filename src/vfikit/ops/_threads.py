"""Rows of a compiled ``nogil`` kernel spread over a small thread pool (instead of numba's ``parallel=True``,
whose compilation takes many seconds per kernel on first use)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch

_POOL: list = []  # [ThreadPoolExecutor, its worker count, the process id that made it]


def run_rows(rows: int, call: Callable[[int, int], None]) -> None:
    """``call(lo, hi)`` over [0, rows) in chunks, on ``torch.get_num_threads()`` threads (the kernels release
    the GIL); a few chunks per thread so that a thread slowed by other load does not hold up the rest."""
    threads = max(1, min(torch.get_num_threads(), rows))
    if threads == 1:
        call(0, rows)
        return
    if not _POOL or _POOL[1] != threads or _POOL[2] != os.getpid():  # a forked child has none of the threads
        if _POOL and _POOL[2] == os.getpid():
            _POOL[0].shutdown(wait=False)
        _POOL[:] = [ThreadPoolExecutor(max_workers=threads, thread_name_prefix="vfikit-ops"), threads, os.getpid()]
    chunks = min(rows, threads * 4)
    bounds = [(k * rows) // chunks for k in range(chunks + 1)]
    for future in [_POOL[0].submit(call, lo, hi) for lo, hi in itertools.pairwise(bounds)]:
        future.result()
