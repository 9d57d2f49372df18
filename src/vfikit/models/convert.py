"""Official checkpoint formats -> our state dicts: one pure function per format.

Each converter takes the object ``torch.load(path, weights_only=True)`` returned, the ordered
``(official key, shape)`` manifest the file must match and the map official key -> our key; it
unwraps the container, normalises the key spelling as the official loader does, checks the ordered
key/shape list against the manifest (``ManifestMismatch`` on any difference) and renames.

| format    | files                                          | container                                    |
|-----------|------------------------------------------------|----------------------------------------------|
| "sepconv" | sepconv-slomo ``network-l1.pytorch``/``-lf``   | bare state dict, keys ``module*`` or ``net*`` |
| "edsc"    | EDSC-pytorch ``EDSC_s_l1.ckpt``, ``EDSC_m.ckpt`` | ``{"model_state": state_dict}``            |
| "adacof"  | AdaCoF-pytorch ``ckpt.pth``, CDFI ``*.pth``    | ``{"state_dict": state_dict, ...}``          |

Manifests are derived from the models themselves (``KernelVFIModel.official_manifest``); the tests
compare them with ``../shared/reference/manifests/*.json``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from vfikit.errors import VfikitError

Manifest = Sequence[tuple[str, tuple[int, ...]]]


class ManifestMismatch(VfikitError):
    """A checkpoint's ordered key/shape list differs from the architecture's manifest."""


def _as_state_dict(obj: Any, where: str) -> Mapping[str, torch.Tensor]:
    if not isinstance(obj, Mapping) or not all(isinstance(k, str) for k in obj):
        raise VfikitError(f"{where}: expected a dict of tensors, got {type(obj).__name__}")
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise VfikitError(f"{where}: entries that are not tensors: {bad[:5]}")
    return obj


def check_manifest(state: Mapping[str, torch.Tensor], manifest: Manifest, what: str) -> None:
    """Raise ManifestMismatch unless ``state``'s ordered (key, shape) list equals ``manifest``."""
    got = [(k, tuple(v.shape)) for k, v in state.items()]
    want = [(k, tuple(s)) for k, s in manifest]
    if got == want:
        return
    got_keys, want_keys = {k for k, _ in got}, {k for k, _ in want}
    missing = [k for k, _ in want if k not in got_keys]
    unexpected = [k for k, _ in got if k not in want_keys]
    shapes = dict(got)
    wrong = [f"{k}: {shapes[k]} instead of {s}" for k, s in want if k in shapes and shapes[k] != s]
    parts = [f"{what}: the checkpoint does not match the architecture ({len(got)} tensors, expected {len(want)})"]
    if missing:
        parts.append(f"missing {len(missing)} keys, e.g. {missing[:4]}")
    if unexpected:
        parts.append(f"unexpected {len(unexpected)} keys, e.g. {unexpected[:4]}")
    if wrong:
        parts.append(f"{len(wrong)} shape mismatches, e.g. {wrong[:3]}")
    if not (missing or unexpected or wrong):
        first = next(i for i, (a, b) in enumerate(zip(got, want)) if a != b)
        parts.append(f"same keys in a different order (first difference at position {first}: "
                     f"{got[first][0]!r} where {want[first][0]!r} is expected)")
    raise ManifestMismatch("; ".join(parts))


def _rename(state: Mapping[str, torch.Tensor], to_ours: Mapping[str, str]) -> OrderedDict[str, torch.Tensor]:
    return OrderedDict((to_ours[k], v) for k, v in state.items())


def convert_sepconv(checkpoint: Any, manifest: Manifest, to_ours: Mapping[str, str]) -> OrderedDict[str, torch.Tensor]:
    """sepconv-slomo ``network-*.pytorch``: a bare state dict whose keys spell ``module`` for ``net``.

    The official loader replaces every ``module`` substring by ``net``; both spellings are accepted.
    """
    state = _as_state_dict(checkpoint, "sepconv checkpoint")
    renamed = OrderedDict((k.replace("module", "net"), v) for k, v in state.items())
    check_manifest(renamed, manifest, "sepconv checkpoint")
    return _rename(renamed, to_ours)


def convert_edsc(checkpoint: Any, manifest: Manifest, to_ours: Mapping[str, str]) -> OrderedDict[str, torch.Tensor]:
    """EDSC-pytorch ``.ckpt``: ``{"model_state": state_dict}`` with the ``Network`` keys verbatim."""
    if not isinstance(checkpoint, Mapping) or "model_state" not in checkpoint:
        keys = list(checkpoint)[:5] if isinstance(checkpoint, Mapping) else type(checkpoint).__name__
        raise VfikitError(f"EDSC checkpoint: expected a dict with a 'model_state' entry, got {keys}")
    state = _as_state_dict(checkpoint["model_state"], "EDSC checkpoint['model_state']")
    check_manifest(state, manifest, "EDSC checkpoint")
    return _rename(state, to_ours)


def convert_adacof(checkpoint: Any, manifest: Manifest, to_ours: Mapping[str, str]) -> OrderedDict[str, torch.Tensor]:
    """AdaCoF-pytorch / CDFI ``.pth``: ``{"state_dict": state_dict, "epoch": ...}``.

    A bare state dict with ``get_kernel.`` keys (as CDFI's sparsity tool accepts) is also taken.
    """
    if isinstance(checkpoint, Mapping) and "state_dict" in checkpoint:
        state = _as_state_dict(checkpoint["state_dict"], "AdaCoF/CDFI checkpoint['state_dict']")
    elif isinstance(checkpoint, Mapping) and any(str(k).startswith("get_kernel.") for k in checkpoint):
        state = _as_state_dict(checkpoint, "AdaCoF/CDFI checkpoint")
    else:
        keys = list(checkpoint)[:5] if isinstance(checkpoint, Mapping) else type(checkpoint).__name__
        raise VfikitError(f"AdaCoF/CDFI checkpoint: expected a dict with a 'state_dict' entry, got {keys}")
    check_manifest(state, manifest, "AdaCoF/CDFI checkpoint")
    return _rename(state, to_ours)


CONVERTERS: dict[str, Callable[[Any, Manifest, Mapping[str, str]], OrderedDict[str, torch.Tensor]]] = {
    "sepconv": convert_sepconv,
    "edsc": convert_edsc,
    "adacof": convert_adacof,
}


def official_maps(model: torch.nn.Module) -> tuple[list[tuple[str, tuple[int, ...]]], dict[str, str]]:
    """(manifest, official key -> our key) of a model with an ``official_key`` map."""
    if not hasattr(model, "official_manifest"):
        raise VfikitError(f"{type(model).__name__} has no official checkpoint format")
    manifest = model.official_manifest()
    ours = list(model.state_dict())
    to_ours = {official: mine for (official, _), mine in zip(manifest, ours)}
    if len(to_ours) != len(ours):
        raise RuntimeError(f"{type(model).__name__}: the official key map is not one-to-one")
    return manifest, to_ours


def convert_official(model: torch.nn.Module, checkpoint: Any,
                     format: str | None = None) -> OrderedDict[str, torch.Tensor]:
    """Our state dict for ``model`` from an official checkpoint object (format defaults to the model's)."""
    fmt = format or getattr(model, "official_format", "")
    if fmt not in CONVERTERS:
        raise VfikitError(f"unknown official checkpoint format {fmt!r}; known: {sorted(CONVERTERS)}")
    manifest, to_ours = official_maps(model)
    return CONVERTERS[fmt](checkpoint, manifest, to_ours)


def export_official(model: torch.nn.Module) -> dict[str, Any]:
    """The object the authors' code would ``torch.load`` for ``model``'s weights (inverse of the converters).

    SepConv is written with the ``net*`` spelling that the current sepconv-slomo code loads.
    """
    fmt = getattr(model, "official_format", "")
    if fmt not in CONVERTERS:
        raise VfikitError(f"{type(model).__name__} has no official checkpoint format")
    state = OrderedDict((model.official_key(k), v.detach().clone()) for k, v in model.state_dict().items())
    if fmt == "edsc":
        return {"model_state": state}
    if fmt == "adacof":
        return {"state_dict": state}
    return state

