"""vfikit: kernel-based video frame interpolation (SepConv, DSepConv, EDSC, AdaCoF, CDFI)."""

__version__ = "0.1.0"
