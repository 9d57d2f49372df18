"""Compile the default model's CPU kernels before a job needs them.

numba compiles a kernel on its first call and then loads it from its cache (``NUMBA_CACHE_DIR``, by
default ``__pycache__`` beside the sources), so the first interpolation of a fresh install pays for the
compiling: about 4 CPU seconds, 2.5-2.7 of them for the fused synthesis. Two ways to pay less:

* **Ahead:** ``python -m vfikit.ops.warmup`` (for instance while building a container image) puts every
  kernel of the flow-guided default into the cache, for float32 and bfloat16 network heads.
* **In the background** (what ``vfikit interpolate`` does): :func:`start_background_compile`, called
  before anything heavy is imported, starts a helper process (``python -m vfikit.ops.warmup
  --background``) that imports numba without torch and compiles the fused synthesis for the heads' dtype
  the job will most likely use (:func:`_likely_heads`); the job tells it the dtype it will use once it has
  resolved its precision (:func:`choose_synthesis_heads`, from ``Interpolator``), and the helper compiles
  that one too if the guess was wrong. Meanwhile the job loads its model, runs the guide and compiles the
  guide's own kernels; it waits for the helper before its first fused call (:func:`wait_background_compile`,
  which ``guided_adacof_synthesis`` calls), then loads the loop from the cache. The two compile at once on
  two cores; in one process they could not (numba's compiler holds a lock and the GIL; a compiling thread was
  measured no faster, docs/benchmarks.md). The helper runs only with at least two CPUs and where no earlier
  helper has filled this cache for the same request (a marker in ``cache_dir()/compiled_kernels.json``,
  written by the helper when it is done). Whatever goes wrong with the helper, the job compiles the loop
  itself, as it would without one.

This module and the kernels' modules import no torch (the helper starts in a fraction of a second).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from typing import Any

import numpy as np

MARKERS = "compiled_kernels.json"  # in vfikit's cache_dir(): the requests a helper has compiled for
HELPER_TIMEOUT_S = 300.0  # the longest a job waits for the helper before compiling the kernel itself
_HELPER: dict[str, Any] = {}  # this process's helper: "proc" (Popen), "told" (the dtype was sent)


def compile_guide_kernels() -> None:
    """Call the guide's kernels (consistency and softmax splatting) once on tiny inputs typed as
    ``flow_dis`` calls them."""
    from vfikit.ops.splat import consistency, splat_motion

    h, w = 8, 12
    flow, img, plane = np.zeros((h, w, 2), np.float32), np.zeros((h, w, 3), np.float32), np.zeros((h, w), np.float32)
    consistency(flow, flow, img, img, 0.01, 0.5)
    splat_motion(flow, flow, plane, plane, plane, plane, 0.5, 20.0)


def compile_synthesis(bf16_heads: bool) -> None:
    """Call the fused synthesis loop once on tiny arrays typed as ``guided_adacof_synthesis`` passes them
    for the default model: float32 NCHW frames, flows and blend weight; six kernel heads and an occlusion
    head at half the frames' size in the network's channels-last layout, float32 or (``bf16_heads``) the
    int16 bits of bfloat16. ``tests/ops/test_warmup.py`` checks that a real call then compiles nothing."""
    from vfikit.ops.synthesis_kernels import guided_rows, new_scratch

    n, taps, lh, lw = 1, 25, 4, 6
    h, w = 2 * lh, 2 * lw
    dtype = np.int16 if bf16_heads else np.float32

    def channels_last(channels: int) -> np.ndarray:  # (N, C, h, w) over NHWC memory, as the heads are
        return np.zeros((n, lh, lw, channels), dtype).transpose(0, 3, 1, 2)

    frame, flow = np.zeros((n, 3, h, w), np.float32), np.zeros((n, 2, h, w), np.float32)
    heads = tuple(channels_last(taps) for _ in range(6))
    rows_y = np.minimum(np.arange(h) // 2, lh - 1).astype(np.int64)
    cols_x = np.minimum(np.arange(w) // 2, lw - 1).astype(np.int64)
    tap = np.zeros(taps, np.float32)
    guided_rows(0, n * h, (frame, frame), heads, channels_last(1), (flow, flow), np.full((n, 1, h, w), 0.5, np.float32),
                tap, tap, rows_y, rows_y, np.zeros(h, np.float32), cols_x, cols_x, np.zeros(w, np.float32), False,
                True, bf16_heads, *new_scratch(taps, lw, w), np.empty((n, 3, h, w), np.float32))


def _marker_key(precision: str) -> str:
    """What a compiled cache depends on: the precision asked for, Python's version, the cache's place, the
    processor (numba keeps a kernel per CPU), and the files of the kernels' module and of numba (found
    without importing either; numba's ``__init__.py`` stands for its version, as an upgrade rewrites it,
    and costs 40 ms less per run than reading the version from its metadata)."""
    from importlib import util

    from vfikit.runtime import processor_digest

    parts = [precision, sys.version, os.environ.get("NUMBA_CACHE_DIR", ""), processor_digest()]
    for module in ("vfikit.ops.synthesis_kernels", "numba"):
        origin = util.find_spec(module).origin
        source = os.stat(origin)
        parts += [origin, source.st_mtime_ns, source.st_size]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:20]


def _markers() -> list[str]:
    from vfikit.runtime import cache_dir

    try:
        known = json.loads((cache_dir() / MARKERS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [k for k in known if isinstance(k, str)] if isinstance(known, list) else []


def _record_marker(key: str) -> None:
    from vfikit.runtime import cache_dir, write_text_atomic

    try:
        path = cache_dir() / MARKERS
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(sorted({*_markers()[-63:], key})))
    except OSError:
        pass  # a read-only cache: the next job starts a helper again, which then only loads the kernel


def start_background_compile(precision: str = "auto") -> bool:
    """Start the helper process for a job that asked for ``precision`` (see the module's docstring).
    Returns whether a helper was started: not with one CPU, not twice, not where the marker says this
    cache is filled, and not where the process cannot be started."""
    if _HELPER or (os.cpu_count() or 1) < 2:
        return False
    key = _marker_key(precision)
    if key in _markers():
        return False
    try:
        proc = subprocess.Popen([sys.executable, "-m", "vfikit.ops.warmup", "--background", key, precision],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:
        return False
    _HELPER.update(proc=proc, told=False)
    return True


def choose_synthesis_heads(bf16: bool | None) -> None:
    """Tell the helper (if one runs) which fused synthesis the job will call: bfloat16 heads (True),
    float32 (False), or none at all (None: the helper stops once any guess it is compiling is done). Only
    the first call counts; the helper's handle is kept until a fused call waits for it."""
    proc = _HELPER.get("proc")
    if proc is None or _HELPER["told"]:
        return
    _HELPER["told"] = True
    try:
        proc.stdin.write({True: b"bf16\n", False: b"fp32\n", None: b"none\n"}[bf16])
        proc.stdin.close()
    except OSError:
        pass  # the helper has gone: the job compiles for itself


def wait_background_compile(bf16: bool) -> None:
    """Before the first fused call with ``bf16`` heads: wait until the helper (if one runs) is done, so
    that the call loads the kernel from the cache instead of compiling it a second time."""
    proc = _HELPER.get("proc")
    if proc is None:
        return
    choose_synthesis_heads(bf16)
    _HELPER.clear()
    try:
        proc.wait(HELPER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()


def _likely_heads(precision: str) -> bool | None:
    """The heads' dtype (True: bfloat16) a job asking for ``precision`` will most likely tell, guessed
    without torch: the precision itself, or for ``auto`` what was measured on this processor before, else
    whether it has bfloat16 instructions; None: fp16 (a GPU's, no fused synthesis)."""
    from vfikit.runtime import has_native_bf16, recorded_bf16_faster

    if precision in ("fp32", "bf16"):
        return precision == "bf16"
    if precision != "auto":
        return None
    recorded = recorded_bf16_faster()
    return has_native_bf16() if recorded is None else recorded


def _read_choice(wait: bool) -> str | None:
    """The job's line on stdin ("bf16", "fp32", "none"; "" at its end), or None where ``wait`` is False and
    nothing has come yet (or the platform cannot tell without waiting)."""
    if not wait:
        import select

        try:
            if not select.select([sys.stdin], [], [], 0)[0]:
                return None
        except (OSError, ValueError):
            return None
    return sys.stdin.readline().strip()


def _background(key: str, precision: str) -> int:
    """The helper: if the job has not told the heads' dtype yet (it is importing torch and resolving its
    precision), compile the likely one; then the told one if that differs. The marker is recorded once the
    told dtype is compiled."""
    done: set[bool] = set()
    choice = _read_choice(wait=False)
    if choice is None:
        guess = _likely_heads(precision)
        if guess is not None:
            compile_synthesis(guess)
            done.add(guess)
        choice = _read_choice(wait=True)
    if choice not in ("bf16", "fp32"):
        return 0
    if (choice == "bf16") not in done:
        compile_synthesis(choice == "bf16")
    _record_marker(key)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m vfikit.ops.warmup``: compile for both head dtypes (float32 and bfloat16 networks)."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 3 and argv[0] == "--background":
        return _background(argv[1], argv[2])
    compile_guide_kernels()
    for bf16 in (False, True):
        compile_synthesis(bf16)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
