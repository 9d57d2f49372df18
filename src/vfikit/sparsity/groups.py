"""OBProxSG parameter groups: which tensors get which regulariser."""

from __future__ import annotations

from torch import nn

from vfikit.errors import VfikitError
from vfikit.sparsity.graph import channel_sets


def obproxsg_param_groups(model: nn.Module, sparsity: str, params: list[nn.Parameter] | None = None) -> list[dict]:
    """Parameter groups for :class:`vfikit.sparsity.OBProxSG`.

    ``"group"``: one group per prunable conv of an AdaCoF-family model (its weight and bias, so each
    output channel is one sparsity group; see :mod:`vfikit.sparsity.graph`), and the remaining
    parameters (fixed-width head outputs, CDFI's pyramid and GridNet) with plain SGD steps.
    ``"l1"``: every parameter with the element-wise penalty (CDFI's setting; any model).
    Only parameters in ``params`` (default: all that require grad) are included.
    """
    wanted = list(params) if params is not None else [p for p in model.parameters() if p.requires_grad]
    if sparsity == "l1":
        return [{"params": wanted, "sparsity": "l1"}]
    if sparsity != "group":
        raise VfikitError(f"sparsity must be 'group' or 'l1', got {sparsity!r}")
    ids = {id(p) for p in wanted}
    modules = dict(model.named_modules())
    groups, taken = [], set()
    for s in channel_sets(model):
        for path in s.producers:
            conv = modules[path]
            tensors = [t for t in (conv.weight, conv.bias) if t is not None and id(t) in ids]
            if tensors and id(tensors[0]) not in taken:
                groups.append({"params": tensors, "sparsity": "group", "name": path})
                taken.update(id(t) for t in tensors)
    rest = [p for p in wanted if id(p) not in taken]
    if rest:
        groups.append({"params": rest, "sparsity": "none", "name": "fixed-width"})
    return groups
