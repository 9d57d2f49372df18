"""vfikit: kernel-based video frame interpolation (SepConv, DSepConv, EDSC, AdaCoF, CDFI)."""

__version__ = "0.1.0"

from vfikit.registry import create_model, list_models  # after __version__: hub.py imports it

__all__ = ["Interpolator", "__version__", "create_model", "list_models"]


def __getattr__(name: str):
    if name == "Interpolator":  # imported on first use
        from vfikit.inference import Interpolator

        return Interpolator
    raise AttributeError(f"module 'vfikit' has no attribute {name!r}")
