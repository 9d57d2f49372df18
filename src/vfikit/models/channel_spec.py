"""Channel specs: the conv widths of an AdaCoF-family network as data (JSON).

A spec names every module of the kernel estimator and lists the output widths of its convs; the
input widths follow from the wiring, the tap count of the last head conv from the kernel size::

    {
      "format": "vfikit-channel-spec", "version": 1, "family": "adacof" | "cdfi",
      "name": "...", "description": "...", "source": "...",
      "widths": {
        "conv1": [a, b, c], ... "conv5": [...],        # encoder blocks: 3 convs each
        "deconv5": [...], ... "deconv2": [...],        # decoder blocks: 3 convs each
        "upsample5": [w], ... "upsample2": [w],        # one conv each; must equal conv5..conv2's last width
        "weight1": [a, b, c], "offset_y1": [...], "offset_x1": [...],   # heads: the three convs before the
        "weight2": [...], "offset_y2": [...], "offset_x2": [...],       # upsampling; the last conv outputs
        "occlusion": [...],                                             # F*F taps (or 1 channel)
        "pyramid": [w1, w2, w3, w4, w5], "blend": [a, b, c]             # CDFI only
      }
    }

The module names are those of the model: ``unet.<name>``, ``heads.<name>``, ``pyramid.<level-1>``.
A compression tool writes the widths it keeps with :func:`save_channel_spec`; ``AdaCoF(channels=...)``
and ``CDFI(channels=...)`` build the compact network from it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from vfikit.errors import VfikitError
from vfikit.models.blocks import UNET_MODULES, check_unet_widths, check_widths
from vfikit.runtime import write_text_atomic

SPEC_FORMAT = "vfikit-channel-spec"
ADACOF_HEADS = ("weight1", "offset_y1", "offset_x1", "weight2", "offset_y2", "offset_x2", "occlusion")
CDFI_EXTRA = ("pyramid", "blend")


def packaged_specs() -> list[str]:
    """Names of the channel specs shipped in ``vfikit/models/specs``."""
    folder = resources.files("vfikit.models") / "specs"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json"))


def dense_adacof_widths(kernel_size: int) -> dict[str, list[int]]:
    """Widths of the original (dense) AdaCoF for ``kernel_size`` taps per axis."""
    taps = kernel_size * kernel_size
    widths: dict[str, list[int]] = {}
    for k, c in zip(range(1, 6), (32, 64, 128, 256, 512)):
        widths[f"conv{k}"] = [c, c, c]
    for k, c in zip(range(5, 1, -1), (512, 256, 128, 64)):
        widths[f"deconv{k}"] = [c, c, c]
        widths[f"upsample{k}"] = [c]
    for name in ADACOF_HEADS[:-1]:
        widths[name] = [64, 64, taps]
    widths["occlusion"] = [64, 64, 64]
    return widths


def validate_widths(widths: Mapping[str, Any], family: str) -> dict[str, list[int]]:
    """Check a widths mapping for ``family`` ("adacof" or "cdfi"); returns a clean copy."""
    if not isinstance(widths, Mapping):
        raise VfikitError(f"channel spec widths must be a mapping, got {type(widths).__name__}")
    expected = list(UNET_MODULES) + list(ADACOF_HEADS) + (list(CDFI_EXTRA) if family == "cdfi" else [])
    unknown = sorted(set(widths) - set(expected))
    missing = [n for n in expected if n not in widths]
    if unknown or missing:
        raise VfikitError(f"channel spec for {family!r}: unknown modules {unknown}, missing modules {missing}")
    check_unet_widths(widths)
    out = {name: list(widths[name]) for name in UNET_MODULES}
    for name in ADACOF_HEADS + (("blend",) if family == "cdfi" else ()):
        out[name] = check_widths(name, widths[name], 3)
    if family == "cdfi":
        out["pyramid"] = check_widths("pyramid", widths["pyramid"], 5)
    return out


def load_channel_spec(spec: str | os.PathLike | Mapping[str, Any], family: str) -> dict[str, list[int]]:
    """Widths from a packaged spec name (e.g. ``"compressed_adacof"``), a JSON path or a mapping.

    A mapping may be a whole spec (with ``"widths"``) or just the widths.
    """
    if isinstance(spec, Mapping):
        data: Mapping[str, Any] = spec
    else:
        text = str(spec)
        if text in packaged_specs():
            data = json.loads((resources.files("vfikit.models") / "specs" / f"{text}.json").read_text())
        else:
            path = Path(text)
            if not path.is_file():
                raise VfikitError(
                    f"channel spec {text!r} is neither a packaged spec ({', '.join(packaged_specs())}) nor a file"
                )
            try:
                data = json.loads(path.read_text())
            except json.JSONDecodeError as exc:
                raise VfikitError(f"channel spec {path} is not valid JSON: {exc}") from None
    if "widths" in data:
        if data.get("format", SPEC_FORMAT) != SPEC_FORMAT:
            raise VfikitError(f"not a {SPEC_FORMAT} file: format={data.get('format')!r}")
        if data.get("family", family) != family:
            raise VfikitError(f"channel spec is for family {data.get('family')!r}, not {family!r}")
        data = data["widths"]
    return validate_widths(data, family)


def save_channel_spec(path: str | os.PathLike, widths: Mapping[str, Any], *, family: str, name: str,
                      description: str = "", source: str = "", force: bool = False) -> Path:
    """Write a validated channel spec as JSON (temporary file, then renamed into place)."""
    clean = validate_widths(widths, family)
    path = Path(path)
    if path.exists() and not force:
        raise VfikitError(f"{path} exists; pass force=True to overwrite it")
    doc = {"format": SPEC_FORMAT, "version": 1, "family": family, "name": name, "description": description,
           "source": source, "widths": clean}
    write_text_atomic(path, json.dumps(doc, indent=2) + "\n")
    return path
