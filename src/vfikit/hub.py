"""Models with their weights: :func:`create_model`, loading official checkpoints, our own files and
training checkpoints, saving ours, optional download + cache.

This module stands above the registry (pure data: names, factories, weight specs) and the models;
the training engine, inference and the commands build models through it.

:func:`create_model` is the one door: a registry name, or the path of a file that names its model (a vfikit
file, trained weights). The weights of ``create_model(name, weights=...)`` may be:

* a **tag** of the architecture (``"official"``, ``"vfikit"``...): a file shipped in
  ``vfikit/weights/``, else a file in the cache, else a download from the recorded URL (only when
  the network is allowed; ``VFIKIT_OFFLINE=1`` forbids it) checked against its sha256 when known;
* a **path** to an official checkpoint (SepConv ``network-*.pytorch``, EDSC ``.ckpt``, AdaCoF/CDFI
  ``.pth``): loaded with ``torch.load(weights_only=True)``, checked against the architecture's manifest,
  and the model is built with the official convention and channel order so that it computes what the
  authors' code computes;
* a path to **our file** (safetensors written by :func:`save_vfikit`, any file name): the model is
  rebuilt from the architecture and arguments stored inside (convention and channel order included);
* a path to **trained weights** (:data:`TRAINED_WEIGHTS_KEYS`: a training checkpoint or ``best.pt``, a
  dict with ``model``, ``arch`` and ``model_args``; the averaged weights when the run kept an ``ema``).

The format of a file is decided by its content, never by its extension.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vfikit import __version__
from vfikit.errors import MissingDependencyError, VfikitError
from vfikit.models.base import mark_trained
from vfikit.models.catalog import ModelEntry, get_entry, list_models, split_name
from vfikit.runtime import (
    atomic_path,
    cache_dir,
    count_non_finite,
    is_torch_save,
    packaged_weights,
    sha256_file,
    torch_load,
)

VFIKIT_FORMAT = "vfikit"
ENV_OFFLINE = "VFIKIT_OFFLINE"


# ----------------------------------------------------------------------------------------------
# Locating a tag's file


def download(url: str, dest: Path, sha256: str | None = None) -> Path:
    """Download ``url`` to ``dest`` via a temporary file, verifying ``sha256`` when given.

    Refuses when ``VFIKIT_OFFLINE`` is set. Without a known checksum the computed one is printed so
    that it can be pinned.
    """
    if os.environ.get(ENV_OFFLINE):
        raise VfikitError(f"{ENV_OFFLINE} is set; not downloading {url} (download it yourself and pass its path)")
    print(f"vfikit: downloading {url} -> {dest}", file=sys.stderr)
    try:
        with atomic_path(dest) as tmp:
            with open(tmp, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:
                while block := resp.read(1 << 20):
                    out.write(block)
            digest = sha256_file(tmp)
            if sha256 and digest != sha256.lower():
                raise VfikitError(f"checksum mismatch for {url}: got sha256 {digest}, expected {sha256}")
            if not sha256:
                print(f"vfikit: sha256 of {dest.name}: {digest} (not recorded in the registry)", file=sys.stderr)
    except urllib.error.URLError as exc:
        raise VfikitError(f"could not download {url}: {exc}") from None
    return dest


def weights_file(entry: ModelEntry, tag: str) -> Path:
    """Local path of ``entry``'s weights ``tag`` (packaged, cached or downloaded)."""
    if tag not in entry.weights:
        known = ", ".join(sorted(entry.weights)) or "none"
        raise VfikitError(f"{entry.name} has no weights tagged {tag!r} (known tags: {known})")
    spec = entry.weights[tag]
    if spec.filename:
        path = packaged_weights(spec.filename)
        if path is not None:
            return path
    if not spec.url:
        where = f" {spec.notes}" if spec.notes else ""
        raise VfikitError(f"{entry.name}.{tag} cannot be downloaded automatically.{where}")
    path = cache_dir() / f"{entry.name}.{tag}" / Path(spec.url.split("?")[0]).name
    if path.is_file():
        if spec.sha256 and sha256_file(path) != spec.sha256.lower():
            raise VfikitError(f"cached {path} does not match its sha256 {spec.sha256}; delete it to download again")
        return path
    return download(spec.url, path, spec.sha256)


# ----------------------------------------------------------------------------------------------
# Loading


TRAINED_WEIGHTS_KEYS = ("model", "arch", "model_args")
"""The trained-weights format: a ``torch.save`` dict (``weights_only``-loadable) holding ``model`` (the state
dict), ``arch`` (the registry name) and ``model_args`` (the build arguments), and optionally ``ema`` (the
state dict of a ``torch.optim.swa_utils.AveragedModel``; its ``module.*`` weights are the ones loaded when
present). Training checkpoints and ``best.pt`` (``vfikit.engine.checkpoint``) and the compression stages add
their own keys around these. :func:`trained_weights` writes the dict, :func:`create_model` reads it."""


def create_model(name: str | os.PathLike, weights: str | os.PathLike | None = None, **kwargs: Any) -> nn.Module:
    """A model given as a name, a vfikit file or a trained-weights file: the one way to build a model.

    Args:
        name: ``arch`` (fresh weights), ``arch.tag`` (a registered weight set), or the path of a file that
            names its architecture: a vfikit file or a trained-weights file (training checkpoint,
            ``best.pt``; its averaged weights when the run kept an ``ema``). Registered names win over
            files of the same name.
        weights: with a registry name, a file path (an official checkpoint, a vfikit file or a
            trained-weights file) or a tag; overrides the tag in ``name``.
        kwargs: build arguments, passed to the factory; they replace recorded ones (e.g.
            ``convention="clean"``, ``flow=`` for the guide of a flow-guided model).
    Returns:
        the model in eval mode; ``model.vfikit_arch`` / ``model.vfikit_args`` record how it was built.
    """
    if weights is None and _names_a_file(name):
        return _model_of_file(Path(name).expanduser(), kwargs)
    entry = get_entry(str(name))
    source = weights if weights is not None else split_name(str(name))[1]
    if source is not None:
        return _load_source(entry, source, kwargs)
    return _build(entry, kwargs).eval()


def _names_a_file(name: str | os.PathLike) -> bool:
    if isinstance(name, os.PathLike):
        return True
    try:
        get_entry(name)
    except VfikitError:
        return Path(name).expanduser().is_file()
    return False


def _model_of_file(path: Path, kwargs: dict[str, Any]) -> nn.Module:
    """The model of a file that names its architecture (vfikit file, trained weights), in eval mode."""
    if _file_kind(path) == "vfikit":
        return _load_file(get_entry(read_vfikit_header(path)["arch"]), path, kwargs)
    obj = torch_load(path, "trained weights")
    if not is_trained_weights(obj):
        raise VfikitError(f"cannot tell which model {path} is for: it is not a vfikit file or trained weights "
                          f"(those hold {', '.join(TRAINED_WEIGHTS_KEYS)}); name the model, e.g. "
                          f"create_model('cdfi', weights='{path}')")
    return _load_file(get_entry(obj["arch"]), path, kwargs, obj)


def trained_weights(model: nn.Module, *, arch: str | None = None, model_args: Mapping[str, Any] | None = None,
                    **extra: Any) -> dict[str, Any]:
    """The trained-weights dict of ``model`` (:data:`TRAINED_WEIGHTS_KEYS`) with ``extra`` keys beside them.

    ``arch`` and ``model_args`` default to what the model records (``vfikit_arch``, ``model_args``).
    """
    arch = arch or getattr(model, "vfikit_arch", None)
    args = model_args if model_args is not None else (getattr(model, "model_args", None)
                                                      or getattr(model, "vfikit_args", None))
    if not arch or args is None:
        raise VfikitError(f"{type(model).__name__} does not record its architecture and build arguments; "
                          "pass arch= and model_args=")
    return {"model": model.state_dict(), "arch": arch, "model_args": dict(args), **extra}


def save_trained_weights(path: str | os.PathLike, model: nn.Module, **fields: Any) -> Path:
    """Write :func:`trained_weights` of ``model`` (``fields``: its keyword arguments) to ``path`` atomically."""
    path = Path(path)
    state = trained_weights(model, **fields)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def is_trained_weights(obj: Any) -> bool:
    """True for a trained-weights dict (a training checkpoint, ``best.pt``): it holds :data:`TRAINED_WEIGHTS_KEYS`."""
    return isinstance(obj, Mapping) and set(TRAINED_WEIGHTS_KEYS) <= set(obj)


def ema_weights(state: Mapping[str, Any]) -> dict | None:
    """The averaged weights of a trained-weights dict (``train.ema_decay``), or None when it has none."""
    ema = state.get("ema")
    if not ema:
        return None
    return {k[len("module."):]: v for k, v in ema.items() if k.startswith("module.")}


def load_trained_model(path: str | os.PathLike, map_location: str | torch.device = "cpu",
                       **kwargs: Any) -> nn.Module:
    """Deprecated: ``create_model(path, **kwargs)`` (kept for the code docs/training.md once showed)."""
    return create_model(Path(path), **kwargs).to(map_location)


def _file_kind(path: Path) -> str:
    """``"vfikit"`` (safetensors) or ``"torch"`` (a ``torch.save`` archive), told by the content; a clear
    error for a missing file and for anything else (a damaged header included)."""
    if not path.is_file():
        raise VfikitError(f"weights file not found: {path}")
    if _is_safetensors(path):
        return "vfikit"
    if is_torch_save(path):
        return "torch"
    raise VfikitError(f"{path} is damaged or not a weights file: it is not a PyTorch or vfikit weights file "
                      "(it is neither a torch.save archive nor safetensors)")


def _is_safetensors(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) < 9 or head[:4] == b"PK\x03\x04" or head[:1] == b"\x80":
        return False
    n = int.from_bytes(head[:8], "little")
    return 2 <= n <= path.stat().st_size and head[8:9] == b"{"


def _safetensors():
    try:
        from safetensors import safe_open
        from safetensors.torch import save_file
    except ImportError as exc:  # pragma: no cover - safetensors is a core dependency
        raise MissingDependencyError("vfikit weight files need safetensors (pip install safetensors)") from exc
    return safe_open, save_file


def read_vfikit_header(path: str | os.PathLike) -> dict[str, Any]:
    """Metadata of one of our files: ``{"arch", "model_args", "card", "vfikit_version", "dtype"}``."""
    path = Path(path)
    safe_open, _ = _safetensors()
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise VfikitError(f"{path} is damaged: not a readable vfikit (safetensors) file: {exc}") from None
    if meta.get("format") != VFIKIT_FORMAT:
        raise VfikitError(f"{path} is a safetensors file but not a vfikit model (format={meta.get('format')!r})")
    try:
        return {"arch": meta["arch"], "model_args": json.loads(meta["model_args"]),
                "card": json.loads(meta.get("card", "{}")), "vfikit_version": meta.get("vfikit_version", ""),
                "dtype": meta.get("dtype", "float32")}
    except (KeyError, json.JSONDecodeError) as exc:
        raise VfikitError(f"{path}: damaged vfikit metadata ({exc})") from None


def architecture_of(path: str | os.PathLike) -> str | None:
    """The architecture a weights file records: ours (vfikit files) do; official checkpoints do not (None)."""
    return read_vfikit_header(path)["arch"] if _file_kind(Path(path)) == "vfikit" else None


def _load_vfikit_file(entry: ModelEntry, path: Path, kwargs: dict[str, Any]) -> nn.Module:
    header = read_vfikit_header(path)
    if header["arch"] != entry.name:
        raise VfikitError(f"{path} holds weights for {header['arch']!r}, not {entry.name!r}")
    safe_open, _ = _safetensors()
    with safe_open(str(path), framework="pt") as f:
        state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
    args = {**header["model_args"], **kwargs}
    model = _build(entry, args)
    _load_state(model, state, str(path))
    model.vfikit_card = header["card"]
    return model


def _build(entry: ModelEntry, args: dict[str, Any]) -> nn.Module:
    model = entry.factory(**args)
    model.vfikit_arch = entry.name
    model.vfikit_args = dict(getattr(model, "model_args", args))
    return model


def _load_state(model: nn.Module, state: Mapping[str, torch.Tensor], where: str) -> None:
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k}: {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
             if k in state and state[k].shape != v.shape]
    if missing or unexpected or wrong:
        raise VfikitError(f"{where} does not fit {getattr(model, 'vfikit_arch', type(model).__name__)}: "
                          f"missing {missing[:4]}, unexpected {unexpected[:4]}, shape mismatches {wrong[:3]}")
    bad = count_non_finite(dict(state))
    if bad:
        raise VfikitError(f"{where} holds non-finite weights ({bad} NaN or infinite values): the file is damaged "
                          "or was saved from a training run that diverged")
    with torch.no_grad():
        for k, v in own.items():
            v.copy_(state[k].to(v.dtype))


def _probe(entry: ModelEntry) -> nn.Module:
    """The architecture on the meta device (no memory): its official format and manifest."""
    with torch.device("meta"):
        return entry.factory(convention="official")


def matching_architectures(checkpoint: Any) -> list[str]:
    """Registered architectures whose official format and manifest accept ``checkpoint``."""
    from vfikit.models.convert import CONVERTERS, official_maps

    hits = []
    for name in list_models():
        entry = get_entry(name)
        try:
            probe = _probe(entry)
            manifest, to_ours = official_maps(probe)
            CONVERTERS[probe.official_format](checkpoint, manifest, to_ours)
        except (VfikitError, TypeError, KeyError):
            continue
        hits.append(name)
    return hits


def _load_official(entry: ModelEntry, checkpoint: Any, where: str, kwargs: dict[str, Any]) -> nn.Module:
    from vfikit.models.convert import CONVERTERS, ManifestMismatch, official_maps

    try:
        probe = _probe(entry)
    except TypeError:
        raise VfikitError(f"{entry.name} has no official checkpoint format; {where} cannot be loaded") from None
    fmt = getattr(probe, "official_format", "")
    if fmt not in CONVERTERS:
        raise VfikitError(f"{entry.name} has no official checkpoint format; {where} cannot be loaded")
    args = {"convention": "official", "channel_order": probe.official_channel_order, **kwargs}
    model = _build(entry, args)
    manifest, to_ours = official_maps(model)
    try:
        state = CONVERTERS[fmt](checkpoint, manifest, to_ours)
    except VfikitError as exc:
        others = [n for n in matching_architectures(checkpoint) if n != entry.name]
        hint = f" It fits {', '.join(others)}." if others else ""
        cls = ManifestMismatch if isinstance(exc, ManifestMismatch) else VfikitError
        raise cls(f"{where}: {exc}.{hint}") from None
    _load_state(model, state, where)
    return model


def _load_file(entry: ModelEntry, path: Path, kwargs: dict[str, Any], obj: Any = None) -> nn.Module:
    """``entry``'s model with the weights in ``path`` (format told by the content; ``obj``: the file's
    ``torch.load``-ed content when the caller has read it already), in eval mode."""
    if obj is None and _file_kind(path) == "vfikit":
        model = _load_vfikit_file(entry, path, kwargs)
    else:
        obj = torch_load(path) if obj is None else obj
        if is_trained_weights(obj):
            if obj["arch"] != entry.name:
                raise VfikitError(f"{path} holds trained weights of {obj['arch']!r}, not {entry.name!r}")
            model = _build(entry, {**obj["model_args"], **kwargs})
            _load_state(model, ema_weights(obj) or obj["model"], str(path))
        else:
            model = _load_official(entry, obj, str(path), kwargs)
    mark_trained(model, str(path))
    return model.eval()


def _load_source(entry: ModelEntry, source: str | os.PathLike, kwargs: dict[str, Any]) -> nn.Module:
    """``entry``'s model with weights from ``source``: a tag of the entry or a file path."""
    text = str(source)
    if text in entry.weights:
        model = _load_file(entry, weights_file(entry, text), kwargs)
        mark_trained(model, f"{entry.name}.{text}")
        return model
    if Path(text).expanduser().is_file():
        return _load_file(entry, Path(text).expanduser(), kwargs)
    known = ", ".join(sorted(entry.weights)) or "none"
    if Path(text).suffix or os.sep in text or "/" in text:  # meant as a path
        raise VfikitError(f"weights file not found: {text} (no such file, and not a known tag of {entry.name}: "
                          f"{known})")
    raise VfikitError(f"weights {text!r} for {entry.name}: no such file, and not a known tag (tags: {known})")


# ----------------------------------------------------------------------------------------------
# Saving our own format


def save_vfikit(model: nn.Module, path: str | os.PathLike, card: Mapping[str, Any] | None = None, *,
                arch: str | None = None, dtype: torch.dtype = torch.float32, force: bool = False) -> Path:
    """Write ``model``'s weights as a vfikit file (safetensors + metadata) that ``create_model`` reloads.

    Metadata: ``format="vfikit"``, ``arch``, ``model_args`` (JSON: every build argument, incl.
    convention and channel order), ``card`` (JSON: data, steps, measured metrics...), ``vfikit_version``,
    ``dtype``. ``dtype=torch.float16`` halves the file; weights are cast back to float32 on load.
    The file is written to a temporary name and moved into place; an existing file needs ``force``.
    """
    arch = arch or getattr(model, "vfikit_arch", None)
    if not arch:
        raise VfikitError("save_vfikit: the model does not record its architecture; pass arch='name'")
    get_entry(arch)
    args = getattr(model, "model_args", None) or getattr(model, "vfikit_args", None)
    if args is None:
        raise VfikitError(f"save_vfikit: {type(model).__name__} does not record its build arguments (model_args)")
    if dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise VfikitError(f"save_vfikit: dtype must be float32, float16 or bfloat16, got {dtype}")
    path = Path(path)
    if path.exists() and not force:
        raise VfikitError(f"{path} exists; pass force=True (CLI: --force) to overwrite it")
    try:
        meta = {"format": VFIKIT_FORMAT, "arch": arch, "model_args": json.dumps(args, sort_keys=True),
                "card": json.dumps(dict(card or {}), sort_keys=True), "vfikit_version": __version__,
                "dtype": str(dtype).removeprefix("torch.")}
    except TypeError as exc:
        raise VfikitError(f"save_vfikit: model_args and card must be JSON-serialisable: {exc}") from None
    state = {k: (v.detach().to("cpu", dtype) if v.is_floating_point() else v.detach().cpu()).contiguous()
             for k, v in model.state_dict().items()}
    _, save_file = _safetensors()
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=meta)
    return path


def replace_vfikit_card(path: str | os.PathLike, card: Mapping[str, Any]) -> Path:
    """Rewrite a vfikit file's model card, keeping its tensors (byte for byte) and every other metadata
    field: for recording new measurements of weights that do not change. Written atomically."""
    path = Path(path)
    read_vfikit_header(path)  # a readable vfikit file, else a clear error
    safe_open, save_file = _safetensors()
    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata())
        state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
    try:
        meta["card"] = json.dumps(dict(card), sort_keys=True)
    except TypeError as exc:
        raise VfikitError(f"replace_vfikit_card: the card must be JSON-serialisable: {exc}") from None
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=meta)
    return path
