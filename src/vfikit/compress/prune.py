"""From a sparse model to a compact one: a channel spec, then a smaller network with weights sliced.

``compact_model(model, strategy)`` keeps, per prunable channel set, the number of channels the
strategy asks for (``"group"``: every channel alive in a producer, which is exact; ``"paper_min"`` /
``"paper_max"``: CDFI's sqrt(density) rule) choosing the channels with the largest producer norms,
builds the same architecture from the new widths and copies the surviving weights. With the
``group`` strategy the compact model computes exactly what the sparse one does.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from vfikit.compress.report import alive_channels, set_reports
from vfikit.errors import VfikitError
from vfikit.sparsity.graph import ChannelSet, channel_sets, set_width

STRATEGIES = ("group", "paper_min", "paper_max")


def _producer_norms(modules: dict[str, nn.Module], s: ChannelSet) -> torch.Tensor:
    total = None
    for p in s.producers:
        conv = modules[p]
        sq = conv.weight.detach().flatten(1).pow(2).sum(1)
        if conv.bias is not None:
            sq = sq + conv.bias.detach().pow(2)
        total = sq if total is None else total + sq
    return total.cpu()


def largest_channels(model: nn.Module, s: ChannelSet, n: int) -> torch.Tensor:
    """The ``n`` channels of set ``s`` with the largest producer norm, in increasing index order."""
    return torch.topk(_producer_norms(dict(model.named_modules()), s), n).indices.sort().values


def keep_indices(model: nn.Module, strategy: str = "group") -> dict[str, torch.Tensor]:
    """Per channel-set name, the sorted channel indices kept by ``strategy``."""
    if strategy not in STRATEGIES:
        raise VfikitError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    sets = channel_sets(model)
    modules = dict(model.named_modules())
    reports = {r.name: r for r in set_reports(model, sets)}
    keep = {}
    for s in sets:
        if strategy == "group":
            alive = torch.zeros(set_width(model.model_args["channels"], s), dtype=torch.bool)
            for p in s.producers:
                alive |= alive_channels(modules[p]).cpu()
            idx = alive.nonzero().flatten()
            if idx.numel() == 0:  # a dead set still needs one (zero) channel
                idx = torch.zeros(1, dtype=torch.long)
        else:
            idx = largest_channels(model, s, getattr(reports[s.name], strategy))
        keep[s.name] = idx
    return keep


def compact_widths(model: nn.Module, keep: dict[str, torch.Tensor]) -> dict:
    """The channel spec widths of the compact model."""
    widths = copy.deepcopy(model.model_args["channels"])
    for s in channel_sets(model):
        for key, index in s.spec:
            widths[key][index] = int(keep[s.name].numel())
    return widths


def compact_model(model: nn.Module, strategy: str = "group") -> tuple[nn.Module, dict]:
    """A smaller model of the same class with the kept channels' weights. Returns ``(model, widths)``."""
    keep = keep_indices(model, strategy)
    widths = compact_widths(model, keep)
    args = {**model.model_args, "channels": widths}
    small = type(model)(**args)
    if hasattr(model, "vfikit_arch"):
        small.vfikit_arch = model.vfikit_arch
        small.vfikit_args = {**getattr(model, "vfikit_args", {}), "channels": widths}
    sets = {s.name: s for s in channel_sets(model)}
    copy_convs(model, small, sets, sets, keep)
    return small.train(model.training), widths


def copy_convs(src: nn.Module, dst: nn.Module, src_sets: dict[str, ChannelSet], dst_sets: dict[str, ChannelSet],
               keep: dict[str, torch.Tensor], *, skip: set[str] = frozenset(), fill_new_inputs: float | None = None
               ) -> None:
    """Copy every parameter of ``src`` into ``dst`` (same module names), remapping channel sets.

    For each conv, output channels of a set take ``src`` channels ``keep[set]`` at positions
    ``0..len-1`` (a wider ``dst`` keeps its own initialisation in the rest), and input channels
    likewise; with ``fill_new_inputs`` the copied rows' weights on ``dst``'s extra input channels are set
    to that value (0: new channels have no effect). Modules in ``skip`` or absent from ``src`` keep their values.
    """
    out_idx: dict[str, torch.Tensor] = {}
    in_idx: dict[str, torch.Tensor] = {}
    for name, s in src_sets.items():
        for p in s.producers:
            out_idx[p] = keep[name]
        for c in s.consumers:
            in_idx[c] = keep[name]
    src_mods = dict(src.named_modules())
    with torch.no_grad():
        for name, m in dst.named_modules():
            if name in skip or name not in src_mods:
                continue
            source = src_mods[name]
            if isinstance(m, nn.Conv2d):
                w = source.weight.detach()
                rows = out_idx.get(name, torch.arange(w.shape[0]))
                cols = in_idx.get(name, torch.arange(w.shape[1]))
                w = w[rows.to(w.device)][:, cols.to(w.device)]
                if w.shape[2:] != m.weight.shape[2:] or any(a > b for a, b in zip(w.shape[:2], m.weight.shape[:2])):
                    raise VfikitError(f"cannot copy {name}: {tuple(w.shape)} into {tuple(m.weight.shape)}")
                m.weight[: w.shape[0], : w.shape[1]] = w
                if fill_new_inputs is not None:
                    m.weight[: w.shape[0], w.shape[1]:] = fill_new_inputs
                if m.bias is not None:
                    b = source.bias.detach()[rows.to(source.bias.device)]
                    m.bias[: b.shape[0]] = b
            else:
                for pname, p in m.named_parameters(recurse=False):
                    q = getattr(source, pname)
                    if q.shape != p.shape:
                        raise VfikitError(f"cannot copy {name}.{pname}: {tuple(q.shape)} into {tuple(p.shape)}")
                    p.copy_(q)
