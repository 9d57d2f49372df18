"""vfikit: kernel-based video frame interpolation (SepConv, DSepConv, EDSC, AdaCoF, CDFI).

The public names are imported on first use, so that ``import vfikit`` (and ``vfikit --help``)
does not load torch or PyAV.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["Interpolator", "__version__", "create_model", "interpolate_frames", "interpolate_video", "list_models"]

_LAZY = {
    "create_model": ("vfikit.hub", "create_model"),
    "list_models": ("vfikit.models.catalog", "list_models"),
    "Interpolator": ("vfikit.inference", "Interpolator"),
    "interpolate_video": ("vfikit.video.api", "interpolate_video"),
    "interpolate_frames": ("vfikit.timeline.render", "interpolate_frames"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vfikit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_LAZY))
