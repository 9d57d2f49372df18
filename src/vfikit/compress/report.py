"""Sparsity report: per-layer densities and the channel widths they imply (CDFI's rule and exact groups).

For every conv of the network: element density (non-zeros / all weights, CDFI's measure) and group
density (output channels whose weights and bias are not all zero). For every prunable channel set
(:mod:`vfikit.sparsity.graph`):

* ``group``: channels alive in any producer (exact: removing the others does not change outputs);
* ``paper_min`` / ``paper_max``: CDFI's rule, ``floor(sqrt(density) * width)`` for each conv that
  produces or consumes the set (its ``out*`` or ``in*``), reconciled by the minimum or maximum
  (the extended paper's "-min" / "-max" strategies), at least 1.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from vfikit.sparsity.graph import ChannelSet, channel_sets, set_width


@dataclass
class LayerReport:
    name: str
    shape: list[int]
    density: float  # non-zero weights / weights
    alive_out: int  # output channels with any non-zero weight or bias
    out_channels: int
    in_prime: int  # CDFI rule: floor(sqrt(density) * in)
    out_prime: int  # CDFI rule: floor(sqrt(density) * out)


@dataclass
class SetReport:
    name: str
    width: int
    group: int
    paper_min: int
    paper_max: int


def alive_channels(conv: nn.Conv2d) -> torch.Tensor:
    """Bool (out_channels,): whether any weight or the bias of each output channel is non-zero."""
    alive = conv.weight.detach().flatten(1).ne(0).any(1)
    if conv.bias is not None:
        alive |= conv.bias.detach().ne(0)
    return alive


def layer_reports(model: nn.Module) -> dict[str, LayerReport]:
    out = {}
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            w = m.weight.detach()
            density = float(w.ne(0).sum()) / w.numel()
            s = math.sqrt(density)
            out[name] = LayerReport(name, list(w.shape), density, int(alive_channels(m).sum()), w.shape[0],
                                    int(s * w.shape[1]), int(s * w.shape[0]))
    return out


def set_reports(model: nn.Module, sets: list[ChannelSet] | None = None) -> list[SetReport]:
    sets = sets if sets is not None else channel_sets(model)
    layers = layer_reports(model)
    modules = dict(model.named_modules())
    widths = model.model_args["channels"]
    out = []
    for s in sets:
        alive = torch.zeros(set_width(widths, s), dtype=torch.bool)
        for p in s.producers:
            alive |= alive_channels(modules[p]).cpu()
        implied = [layers[p].out_prime for p in s.producers] + [layers[c].in_prime for c in s.consumers]
        out.append(SetReport(s.name, set_width(widths, s), max(1, int(alive.sum())),
                             max(1, min(implied)), max(1, max(implied))))
    return out


def sparsity_report(model: nn.Module) -> dict:
    """Everything above as one JSON-ready dict (``layers``, ``sets``, overall ``density``)."""
    layers = layer_reports(model)
    params = [p for p in model.parameters()]
    nonzero = sum(int(p.detach().ne(0).sum()) for p in params)
    total = sum(p.numel() for p in params)
    return {"density": nonzero / total, "nonzero_params": nonzero, "params": total,
            "layers": [asdict(v) for v in layers.values()], "sets": [asdict(s) for s in set_reports(model)]}


def format_report(report: dict) -> str:
    """Human-readable tables of a :func:`sparsity_report`."""
    lines = [f"overall density {report['density']:.4f} ({report['nonzero_params']:,} of {report['params']:,} "
             "parameters non-zero)", "", f"{'layer':<28} {'shape':<20} {'density':>8} {'alive/out':>10} "
             f"{'in->in*':>10} {'out->out*':>10}"]
    for r in report["layers"]:
        shape = "x".join(str(v) for v in r["shape"])
        lines.append(f"{r['name']:<28} {shape:<20} {r['density']:>8.4f} {r['alive_out']:>4}/{r['out_channels']:<5} "
                     f"{r['shape'][1]:>4}->{r['in_prime']:<5} {r['out_channels']:>4}->{r['out_prime']:<5}")
    lines += ["", f"{'channel set':<28} {'width':>6} {'group':>6} {'min':>6} {'max':>6}"]
    for s in report["sets"]:
        lines.append(f"{s['name']:<28} {s['width']:>6} {s['group']:>6} {s['paper_min']:>6} {s['paper_max']:>6}")
    return "\n".join(lines)


def write_report(report: dict, path: str | Path) -> None:
    Path(path).write_text(json.dumps(report, indent=1))
