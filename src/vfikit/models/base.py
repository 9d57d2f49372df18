"""The one model contract: ``model(frame0, frame1, t=None) -> frame_t``."""

from __future__ import annotations

from torch import nn

from vfikit.errors import VfikitError
from vfikit.models.catalog import get_entry


class VFIModel(nn.Module):
    """Base class of every interpolation model.

    ``forward(frame0, frame1, t=None)`` takes two (B, 3, H, W) RGB frames in [0, 1] of any size
    (each model pads to what it needs and crops back) and returns the (B, 3, H, W) frame at time
    ``t`` (float or (B,) tensor; None means 0.5). Models whose ``arbitrary_t`` is False only
    compute t = 0.5 and raise on any other t; ``vfikit.Interpolator`` reaches other times by
    recursive bisection. Outputs are not clamped.
    """

    arbitrary_t: bool = False

    def load_state_dict(self, state_dict, *args, **kwargs):  # torch's signature
        """``nn.Module.load_state_dict``; afterwards the model counts as trained (see :func:`is_untrained`)."""
        result = super().load_state_dict(state_dict, *args, **kwargs)
        mark_trained(self, "a loaded state dict")
        return result


def mark_trained(model: nn.Module, source: str) -> None:
    """Record that ``model`` holds loaded weights and where they came from (``model.vfikit_weights``).

    The weights loader (:mod:`vfikit.hub`) and ``VFIModel.load_state_dict`` call it; code that trains a
    model in memory may call it too.
    """
    model.vfikit_weights = source


def is_untrained(model: nn.Module) -> bool:
    """True for a learned model (one with parameters) whose trained weights were never loaded.

    Weight-free models (``overlay``, ``flow_dis``) are never untrained.
    """
    if getattr(model, "vfikit_weights", None):
        return False
    return any(True for _ in model.parameters())


def require_trained(model: nn.Module, *, allow_untrained: bool = False) -> None:
    """Refuse a learned model without trained weights: its output is garbage (purple or black frames).

    ``allow_untrained=True`` (CLI: ``--allow-untrained``) lets tests and research use it anyway.
    """
    if allow_untrained or not is_untrained(model):
        return
    arch = getattr(model, "vfikit_arch", None) or type(model).__name__
    hint = ""
    if getattr(model, "vfikit_arch", None):
        tags = sorted(get_entry(arch).weights)
        hint = f" or a tag ({', '.join(f'{arch}.{t}' for t in tags)})" if tags else ""
    raise VfikitError(
        f"{arch} has no trained weights, so it would produce garbage frames: give --weights FILE{hint} "
        "(`vfikit models` lists the trained ones), or pass --allow-untrained (Python: allow_untrained=True) "
        "for tests and research"
    )
