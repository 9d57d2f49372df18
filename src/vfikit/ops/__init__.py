"""Per-pixel sampling operators of kernel-based frame interpolation.

``sepconv`` (SepConv), ``dsepconv`` (DSepConv / EDSC), ``adacof`` (AdaCoF / CDFI); each with an
explicit ``convention`` (``"official"`` or ``"clean"``) and backend choice. See docs/ops.md.

The names below are imported on first use, so that the compiled kernels' modules (``splat``,
``synthesis_kernels``, ``warmup``) can be imported without torch: the background compile of
``vfikit.ops.warmup`` runs in a process of its own and starts faster without it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BACKENDS", "adacof", "backward_warp", "dsepconv", "resolve_backend", "sepconv"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from vfikit.ops import functional

        value = getattr(functional, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vfikit.ops' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
