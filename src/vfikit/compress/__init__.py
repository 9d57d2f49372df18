"""Compression-driven design: sparsity reports, compact architectures (CDFI, CVPR 2021). The OBProxSG
optimizer lives in :mod:`vfikit.sparsity` (training uses it too) and is re-exported here."""

from vfikit.sparsity.obproxsg import OBProxSG

__all__ = ["OBProxSG"]
