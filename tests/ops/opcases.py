"""Random inputs for the three ops, shaped for either convention (used by the op tests)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vfikit.ops import adacof, dsepconv, sepconv

OPS = ("adacof", "dsepconv", "sepconv")


def lattice_free_offsets(shape, gen, dtype, span: int = 4) -> torch.Tensor:
    """Offsets whose fractional part stays in [0.2, 0.8]: away from every kink and jump of the samplers."""
    whole = torch.randint(-span, span + 1, shape, generator=gen).to(dtype)
    frac = 0.2 + 0.6 * torch.rand(shape, generator=gen, dtype=dtype)
    return whole + frac


@dataclass
class Case:
    op: str
    convention: str
    size: int
    dilation: int
    args: dict[str, torch.Tensor]

    def call(self, backend: str | None = None, **tensors: torch.Tensor) -> torch.Tensor:
        a = {**self.args, **tensors}
        if self.op == "adacof":
            return adacof(a["input"], a["weight"], a["offset_y"], a["offset_x"], self.dilation,
                          convention=self.convention, backend=backend)
        if self.op == "dsepconv":
            return dsepconv(a["input"], a["vertical"], a["horizontal"], a["offset_y"], a["offset_x"], a["mask"],
                            convention=self.convention, backend=backend)
        return sepconv(a["input"], a["vertical"], a["horizontal"], convention=self.convention, backend=backend)


def make_case(op: str, convention: str, *, gen: torch.Generator, n: int = 2, c: int = 3, h: int = 5, w: int = 7,
              size: int = 3, dilation: int = 1, dtype: torch.dtype = torch.float64) -> Case:
    """Inputs of op at output size (h, w); the input is padded when the convention needs it."""
    reach = (size - 1) * (dilation if op == "adacof" else 1)
    pad = reach if convention == "official" else 0
    x = torch.rand(n, c, h + pad, w + pad, generator=gen, dtype=dtype)
    taps = size * size
    if op == "adacof":
        weight = torch.randn(n, taps, h, w, generator=gen, dtype=dtype)
        args = {"input": x, "weight": weight,
                "offset_y": lattice_free_offsets((n, taps, h, w), gen, dtype),
                "offset_x": lattice_free_offsets((n, taps, h, w), gen, dtype)}
    elif op == "dsepconv":
        args = {"input": x,
                "vertical": torch.randn(n, size, h, w, generator=gen, dtype=dtype),
                "horizontal": torch.randn(n, size, h, w, generator=gen, dtype=dtype),
                "offset_y": lattice_free_offsets((n, taps, h, w), gen, dtype),
                "offset_x": lattice_free_offsets((n, taps, h, w), gen, dtype),
                "mask": torch.rand(n, taps, h, w, generator=gen, dtype=dtype)}
    else:
        args = {"input": x,
                "vertical": torch.randn(n, size, h, w, generator=gen, dtype=dtype),
                "horizontal": torch.randn(n, size, h, w, generator=gen, dtype=dtype)}
    return Case(op, convention, size, dilation, args)
