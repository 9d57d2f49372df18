"""Compression-driven design: OBProxSG, sparsity reports, compact architectures (CDFI, CVPR 2021)."""

from vfikit.compress.obproxsg import OBProxSG

__all__ = ["OBProxSG"]
