"""Per-pixel sampling operators of kernel-based frame interpolation.

``sepconv`` (SepConv), ``dsepconv`` (DSepConv / EDSC), ``adacof`` (AdaCoF / CDFI); each with an
explicit ``convention`` (``"official"`` or ``"clean"``) and backend choice. See docs/ops.md.
"""

from vfikit.ops.functional import BACKENDS, adacof, backward_warp, dsepconv, resolve_backend, sepconv

__all__ = ["BACKENDS", "adacof", "backward_warp", "dsepconv", "resolve_backend", "sepconv"]
