"""DAVIS triplets as distributed with AdaCoF-pytorch / CDFI test data.

Layout: ``input/<seq>/frame10.png``, ``input/<seq>/frame11.png`` and ``gt/<seq>/frame10i11.png``
(the middle frame, t = 0.5). Sequences are those of ``gt/``, in name order (AdaCoF's own list
omits ``dog-control``; we evaluate every folder present).
"""

from __future__ import annotations

from pathlib import Path

from vfikit.data._files import FileTriplets, input_gt_layout, require_dir


class DavisTriplets(FileTriplets):
    """DAVIS frame triplets (frame10, frame11 -> frame10i11)."""

    def __init__(self, root: str | Path):
        root = require_dir(Path(root), "davis")
        super().__init__("davis", root, input_gt_layout(root, "davis", input_dir="input", gt_dir="gt"))
