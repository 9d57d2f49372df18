"""vfikit: kernel-based video frame interpolation (SepConv, DSepConv, EDSC, AdaCoF, CDFI).

``create_model``, ``list_models`` and ``Interpolator`` are imported on first use, so that
``import vfikit`` (and ``vfikit --help``) does not load torch.
"""

__version__ = "0.1.0"

__all__ = ["Interpolator", "__version__", "create_model", "list_models"]

_LAZY = {
    "create_model": ("vfikit.registry", "create_model"),
    "list_models": ("vfikit.registry", "list_models"),
    "Interpolator": ("vfikit.inference", "Interpolator"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'vfikit' has no attribute {name!r}")
