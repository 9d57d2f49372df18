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

from vfikit.compress.graph import ChannelSet, channel_sets, set_width
from vfikit.compress.report import alive_channels, set_reports
from vfikit.errors import VfikitError

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
            n = getattr(reports[s.name], strategy)
            idx = torch.topk(_producer_norms(modules, s), n).indices.sort().values
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
    out_idx: dict[str, torch.Tensor] = {}
    in_idx: dict[str, torch.Tensor] = {}
    for s in channel_sets(model):
        for p in s.producers:
            out_idx[p] = keep[s.name]
        for c in s.consumers:
            in_idx[c] = keep[s.name]
    big = dict(model.named_modules())
    with torch.no_grad():
        for name, m in small.named_modules():
            src = big[name]
            if isinstance(m, nn.Conv2d):
                w = src.weight.detach()
                if name in out_idx:
                    w = w[out_idx[name].to(w.device)]
                if name in in_idx:
                    w = w[:, in_idx[name].to(w.device)]
                m.weight.copy_(w)
                if m.bias is not None:
                    b = src.bias.detach()
                    m.bias.copy_(b[out_idx[name].to(b.device)] if name in out_idx else b)
            else:
                for pname, p in m.named_parameters(recurse=False):
                    p.copy_(getattr(src, pname))
    return small.train(model.training), widths
