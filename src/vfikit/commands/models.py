"""``vfikit models``: list the registered architectures, their sizes and weight tags."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Any

import torch

from vfikit.models.catalog import get_entry, list_models
from vfikit.runtime import count_parameters


def architecture_parameters(name: str) -> int:
    """Parameters of architecture ``name`` with default arguments (built on the meta device: no memory)."""
    with torch.device("meta"):
        model = get_entry(name).factory()
    return count_parameters(model)


def describe_models(names: list[str] | None = None) -> list[dict[str, Any]]:
    """One JSON-ready record per architecture: name, family, description, params, arbitrary_t, weights."""
    rows = []
    for name in names or list_models():
        entry = get_entry(name)
        rows.append({
            "name": entry.name,
            "family": entry.family,
            "description": entry.description,
            "params": architecture_parameters(name),
            "arbitrary_t": entry.arbitrary_t,
            "weights": {tag: dataclasses.asdict(spec) for tag, spec in entry.weights.items()},
        })
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    header = ("name", "family", "params", "arbitrary t", "weights")
    body = [(r["name"], r["family"], f"{r['params']:,}",
             "yes" if r["arbitrary_t"] else "no", ", ".join(sorted(r["weights"])) or "-") for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body)]
    lines = ["  ".join(str(x).ljust(w) if i != 2 else str(x).rjust(w) for i, (x, w) in enumerate(zip(line, widths)))
             for line in (header, *body)]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", help="architectures to show (default: all)")
    parser.add_argument("--json", action="store_true", help="print JSON (with weight URLs, licences, citations)")


def run(args: argparse.Namespace) -> int:
    names = [get_entry(n).name for n in args.names] if args.names else None
    rows = describe_models(names)
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(format_table(rows))
    return 0
