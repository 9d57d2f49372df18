"""Structured sparsity for training: the OBProxSG optimizer, its parameter groups and the channel sets of a
model's convolutions. Below ``engine`` (which trains with OBProxSG) and ``compress`` (which prunes with the
channel sets)."""

from vfikit.sparsity.obproxsg import OBProxSG

__all__ = ["OBProxSG"]
