"""Middlebury optical-flow benchmark, "other" set with interpolation ground truth (12 sequences).

Two layouts are understood (``layout="auto"`` picks the one present under ``root``):

* ``"cdfi"``: the copy shipped with CDFI / AdaCoF-pytorch (and ``../shared/data/middlebury_others``):
  ``input/<Seq>/frame10.png``, ``input/<Seq>/frame11.png``, ``gt/<Seq>/frame10i11.png``.
* ``"official"``: the archives from vision.middlebury.edu/flow unpacked side by side:
  ``other-data/<Seq>/frame10.png``, ``frame11.png`` (some sequences have frames 07..14; only 10
  and 11 are used) and ``other-gt-interp/<Seq>/frame10i11.png``.

Sequences are those of the ground-truth folder, in name order (CDFI's evaluation order).
"""

from __future__ import annotations

from pathlib import Path

from vfikit.data._files import FileTriplets, input_gt_layout
from vfikit.errors import VfikitError

LAYOUTS = {"cdfi": ("input", "gt"), "official": ("other-data", "other-gt-interp")}


def _detect(root: Path) -> str:
    found = [name for name, (inp, gt) in LAYOUTS.items() if (root / inp).is_dir() and (root / gt).is_dir()]
    if len(found) == 1:
        return found[0]
    if not found:
        raise VfikitError(
            f"middlebury: {root} holds neither input/ + gt/ (CDFI layout) nor other-data/ + other-gt-interp/ "
            "(official layout)"
        )
    raise VfikitError(f"middlebury: {root} holds both layouts {found}; choose one with layout=")


class MiddleburyOthers(FileTriplets):
    """Middlebury "other" triplets (frame10, frame11 -> frame10i11, t = 0.5)."""

    def __init__(self, root: str | Path, layout: str = "auto"):
        root = Path(root)
        if not root.is_dir():
            raise VfikitError(f"middlebury: directory not found: {root}")
        if layout == "auto":
            layout = _detect(root)
        if layout not in LAYOUTS:
            raise VfikitError(f"middlebury: unknown layout {layout!r}; choose auto, {', '.join(LAYOUTS)}")
        input_dir, gt_dir = LAYOUTS[layout]
        super().__init__("middlebury", root, input_gt_layout(root, "middlebury", input_dir=input_dir, gt_dir=gt_dir))
        self.layout = layout
