"""The model catalog: architectures registered by name, weights described as data.

Pure data, below everything that builds models: each model module registers its factory here with
``@register_model``; :func:`vfikit.hub.create_model` builds a model with its weights. ``vfikit.registry``
hands these names on together with ``create_model``.

Names follow ``arch`` or ``arch.tag`` (``cdfi``, ``cdfi.official``, ``cdfi.vfikit``); a path to a
weights file can be given instead of a tag. See docs/models.md.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from vfikit.errors import VfikitError

# Modules whose import registers models (kept explicit: no plugin magic).
MODEL_MODULES: list[str] = [
    "vfikit.models.sepconv",
    "vfikit.models.dsepconv",
    "vfikit.models.edsc",
    "vfikit.models.adacof",
    "vfikit.models.cdfi",
    "vfikit.models.classical",
    "vfikit.models.guided",
]


@dataclass(frozen=True)
class WeightSpec:
    """Where a set of weights comes from and what it is known to achieve.

    ``format`` names the checkpoint layout understood by ``vfikit.models.convert``
    (``"vfikit"`` for our own files). ``filename`` is a file shipped inside the package
    (``vfikit/weights/``), ``url`` where the authors publish theirs (may be None).
    """

    tag: str
    format: str
    url: str | None = None
    filename: str | None = None
    sha256: str | None = None
    code_license: str = ""
    weights_license: str = ""
    citation: str = ""
    reported_metrics: dict[str, Any] = field(default_factory=dict)
    notes: str = ""


@dataclass(frozen=True)
class ModelEntry:
    """One architecture: its factory and what is known about it.

    ``params``: the exact parameter count with default arguments (the published one for the
    authors' architectures), or None where none is recorded; the tests hold each model to it.
    ``arbitrary_t``: the model computes any t natively (must equal the model's own attribute).
    """

    name: str
    factory: Callable[..., nn.Module]
    family: str
    description: str
    weights: dict[str, WeightSpec]
    arbitrary_t: bool = False
    params: int | None = None


_REGISTRY: dict[str, ModelEntry] = {}
_LOADED = False


def register_model(
    name: str,
    *,
    family: str,
    description: str,
    weights: tuple[WeightSpec, ...] = (),
    arbitrary_t: bool = False,
    params: int | None = None,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering ``factory(**kwargs) -> nn.Module`` under ``name``."""

    def deco(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY and _REGISTRY[name].factory is not factory:
            raise RuntimeError(f"model {name!r} registered twice")
        _REGISTRY[name] = ModelEntry(name, factory, family, description, {w.tag: w for w in weights}, arbitrary_t,
                                     params)
        return factory

    return deco


@contextmanager
def registered(name: str, factory: Callable[..., nn.Module], **info: Any) -> Iterator[ModelEntry]:
    """``factory`` in the catalog under ``name`` for the block only (tests, experiments); ``info`` as for
    :func:`register_model`. Afterwards the catalog is as it was."""
    _ensure_loaded()
    if name in _REGISTRY:
        raise RuntimeError(f"model {name!r} is registered already")
    register_model(name, **info)(factory)
    try:
        yield _REGISTRY[name]
    finally:
        del _REGISTRY[name]


def _ensure_loaded() -> None:
    global _LOADED
    if not _LOADED:
        for module in MODEL_MODULES:
            importlib.import_module(module)
        _LOADED = True


def list_models(pretrained: bool = False) -> list[str]:
    """Registered architecture names; with ``pretrained=True``, every ``arch.tag`` with weights."""
    _ensure_loaded()
    if not pretrained:
        return sorted(_REGISTRY)
    return sorted(f"{e.name}.{tag}" for e in _REGISTRY.values() for tag in e.weights)


def get_entry(name: str) -> ModelEntry:
    """The registry entry of ``name`` (``arch`` or ``arch.tag``); unknown names suggest close ones."""
    _ensure_loaded()
    arch = split_name(name)[0]
    if arch not in _REGISTRY:
        close = difflib.get_close_matches(arch, list(_REGISTRY), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise VfikitError(f"unknown model {arch!r}{hint} (see `vfikit models`)")
    return _REGISTRY[arch]


def split_name(name: str) -> tuple[str, str | None]:
    """``"arch.tag"`` -> ``("arch", "tag")``; ``"arch"`` -> ``("arch", None)``."""
    arch, _, tag = name.partition(".")
    return arch, (tag or None)

