"""Compile the default model's CPU kernels on a background thread, so that a fresh install does not stall.

numba compiles a kernel on its first call (then loads it from its cache, ``NUMBA_CACHE_DIR``): on a fresh
install the first interpolation waited for every kernel of the default model in turn. :func:`start` compiles
them (or loads them from the cache) on a daemon thread with tiny inputs of the same types as the real calls,
while the main thread imports, reads the input, loads the weights and runs the parts that need no kernel
(OpenCV's flow, the network's convolutions); a real call that arrives first waits for numba's compiler lock
and then finds its kernel ready. It starts only where the cache lacks a kernel (a first run, or the first
after an upgrade); ``VFIKIT_WARMUP=0`` turns it off. A warm-up never fails a job: an error in it is ignored
(the real call then compiles and reports it).
"""

from __future__ import annotations

import contextlib
import os
import threading

_THREAD: list[threading.Thread] = []


def start(bf16_heads: bool | None = None) -> threading.Thread | None:
    """Start the warm-up once per process (returns its thread; None when off or already started).
    ``bf16_heads``: warm the synthesis for a bfloat16 network's heads (None: where this CPU has native
    bfloat16, as precision ``auto`` chooses for the default model)."""
    if _THREAD or os.environ.get("VFIKIT_WARMUP", "1") == "0" or _compiled_before():
        return None
    thread = threading.Thread(target=_warm, args=(bf16_heads,), name="vfikit-warmup", daemon=True)
    _THREAD.append(thread)
    thread.start()
    return thread


def _compiled_before() -> bool:
    """True where numba's cache already holds a fresh compilation of every kernel (any signature): then
    there is nothing to hide, and loading the cache on a second thread would only compete with the network
    for the cores (measured: the convolutions 0.45 s slower at 640x480 on 2 cores). Reads numba's cache
    index (private API: any surprise counts as not compiled)."""
    try:
        from vfikit.ops import guided_synthesis, numba_cpu, splat

        kernels = (splat._consistency_loop, splat._splat_motion_loop, numba_cpu._deform_fwd,
                   guided_synthesis._guided_rows)
        return all(bool(kernel._cache._cache_file._load_index()) for kernel in kernels)
    except Exception:
        return False


def _warm(bf16_heads: bool | None) -> None:
    with contextlib.suppress(Exception):  # see the module docstring
        compile_default_kernels(bf16_heads)


def compile_default_kernels(bf16_heads: bool | None = None) -> None:
    """Call each kernel of the flow-guided default once on tiny inputs typed as the model's calls are:
    the guide's consistency and splatting, the one-tap warp and the fused synthesis."""
    import numpy as np
    import torch

    from vfikit.ops.functional import adacof
    from vfikit.ops.guided_synthesis import guided_adacof_synthesis
    from vfikit.ops.splat import consistency, splat_motion

    if bf16_heads is None:
        from vfikit.runtime import native_cpu_bf16

        bf16_heads = native_cpu_bf16()
    h, w = 8, 12
    flow, img, plane = np.zeros((h, w, 2), np.float32), np.zeros((h, w, 3), np.float32), np.zeros((h, w), np.float32)
    consistency(flow, flow, img, img, 0.01, 0.5)
    splat_motion(flow, flow, plane, plane, plane, plane, 0.5, 20.0)
    with torch.no_grad():
        frame, flows = torch.rand(1, 3, 2 * h, 2 * w), torch.zeros(1, 2, 2 * h, 2 * w)
        adacof(frame, torch.ones(1, 1, 2 * h, 2 * w), flows[:, 1:], flows[:, :1], 1, convention="clean")
        dtype = torch.bfloat16 if bf16_heads else torch.float32

        def head(channels: int) -> torch.Tensor:  # channels-last, as the network leaves its heads
            return torch.zeros(1, channels, h, w, dtype=dtype).contiguous(memory_format=torch.channels_last)

        kernel = (head(25), head(25), head(25))
        guided_adacof_synthesis(frame, frame, kernel, kernel, head(1), flows, flows,
                                torch.full((1, 1, 2 * h, 2 * w), 0.5), 1, signed_taps=True)
