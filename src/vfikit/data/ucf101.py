"""UCF101 triplets of DVF (Liu et al. 2017) as shipped with CDFI: 379 samples of 256x256.

Layout: ``<id>/frame_00.png`` (first input), ``<id>/frame_02.png`` (second input),
``<id>/frame_01_gt.png`` (target, t = 0.5); other files (e.g. ``frame_01_ours.png``) are ignored.
Folders are evaluated in numeric order of their names (1, 11, 21, ...), as CDFI does.
"""

from __future__ import annotations

from pathlib import Path

from vfikit.data._files import FileTriplets, TripletFiles, require_dir
from vfikit.errors import VfikitError


def _order(name: str) -> tuple[int, int, str]:
    return (0, int(name), name) if name.isdigit() else (1, 0, name)


class UCF101DVF(FileTriplets):
    """UCF101-DVF triplets (frame_00, frame_02 -> frame_01_gt)."""

    def __init__(self, root: str | Path):
        root = require_dir(Path(root), "ucf101")
        dirs = sorted((p.name for p in root.iterdir() if p.is_dir()), key=_order)
        if not dirs:
            raise VfikitError(f"ucf101: no sample folders (<id>/frame_00.png ...) in {root}")
        samples = [
            TripletFiles(root / d / "frame_00.png", root / d / "frame_02.png", root / d / "frame_01_gt.png", 0.5, d)
            for d in dirs
        ]
        super().__init__("ucf101", root, samples)
