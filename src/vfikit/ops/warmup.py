"""Compile the default model's CPU kernels ahead of the first interpolation: ``python -m vfikit.ops.warmup``.

numba compiles a kernel on its first call and then loads it from its cache (``NUMBA_CACHE_DIR``, by
default ``__pycache__`` beside the sources), so the first interpolation of a fresh install pays for the
compiling. Running this module once after installing (for instance while building a container image) puts
every kernel of the flow-guided default into the cache, for float32 and bfloat16 network heads.

Compiling on a background thread while a job starts was measured as well (issue 24,
``benchmarks/results/first_run_cpu.md``): on two cores it did not shorten the first run (the compiler
holds the GIL and the job's own work already fills both cores) and on warm runs it slowed the network, so
``vfikit interpolate`` does not do it.
"""

from __future__ import annotations


def compile_default_kernels(bf16_heads: bool | None = None) -> None:
    """Call each kernel of the flow-guided default once on tiny inputs typed as the model's calls are:
    the guide's consistency and splatting and the fused synthesis (heads channels-last,
    bfloat16 where ``bf16_heads``; None: where bfloat16 is measured faster here, as precision ``auto`` chooses)."""
    import numpy as np
    import torch

    from vfikit.ops.guided_synthesis import guided_adacof_synthesis
    from vfikit.ops.splat import consistency, splat_motion

    if bf16_heads is None:
        from vfikit.runtime import cpu_bf16_faster

        bf16_heads = cpu_bf16_faster()
    h, w = 8, 12
    flow, img, plane = np.zeros((h, w, 2), np.float32), np.zeros((h, w, 3), np.float32), np.zeros((h, w), np.float32)
    consistency(flow, flow, img, img, 0.01, 0.5)
    splat_motion(flow, flow, plane, plane, plane, plane, 0.5, 20.0)
    with torch.no_grad():
        frame, flows = torch.rand(1, 3, 2 * h, 2 * w), torch.zeros(1, 2, 2 * h, 2 * w)
        dtype = torch.bfloat16 if bf16_heads else torch.float32

        def head(channels: int) -> torch.Tensor:  # channels-last, as the network leaves its heads
            return torch.zeros(1, channels, h, w, dtype=dtype).contiguous(memory_format=torch.channels_last)

        kernel = (head(25), head(25), head(25))
        guided_adacof_synthesis(frame, frame, kernel, kernel, head(1), flows, flows,
                                torch.full((1, 1, 2 * h, 2 * w), 0.5), 1, signed_taps=True)


def main() -> int:
    """Compile for both head dtypes (float32 and bfloat16 networks)."""
    for bf16 in (False, True):
        compile_default_kernels(bf16_heads=bf16)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
