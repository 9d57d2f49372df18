"""Vimeo-90K triplet dataset (Xue et al. 2019): 448x256 frames.

Layout: ``tri_testlist.txt`` / ``tri_trainlist.txt`` with one ``<folder>/<clip>`` per line
(e.g. ``00001/0389``) and ``sequences/<folder>/<clip>/im1.png, im2.png, im3.png``; im1 and im3
are the inputs, im2 the target (t = 0.5).

No augmentation happens here, for either split: the test split is deterministic (CDFI's loader
left random flips and temporal reversal on while testing; see docs/evaluation.md) and training
adds its augmentation on top of this loader. Blank lines of the list are skipped (the official
lists end with one; CDFI drops the last line instead).
"""

from __future__ import annotations

import re
from pathlib import Path

from vfikit.data._files import FileTriplets, TripletFiles, read_list_file, require_dir
from vfikit.errors import VfikitError

SPLITS = {"test": "tri_testlist.txt", "train": "tri_trainlist.txt"}
_ENTRY = re.compile(r"^[^/\\\s]+/[^/\\\s]+$")


class Vimeo90KTriplet(FileTriplets):
    """Vimeo-90K triplets of one split (``"test"`` or ``"train"``)."""

    def __init__(self, root: str | Path, split: str = "test"):
        if split not in SPLITS:
            raise VfikitError(f"vimeo90k: unknown split {split!r}; choose one of {', '.join(SPLITS)}")
        root = require_dir(Path(root), "vimeo90k")
        list_path = root / SPLITS[split]
        seq_root = require_dir(root / "sequences", "vimeo90k")
        samples = []
        for number, entry in read_list_file(list_path, "vimeo90k"):
            if not _ENTRY.match(entry):
                raise VfikitError(
                    f"vimeo90k: malformed line {number} of {list_path}: {entry!r} (expected '<folder>/<clip>')"
                )
            d = seq_root / entry
            samples.append(TripletFiles(d / "im1.png", d / "im3.png", d / "im2.png", 0.5, entry))
        super().__init__("vimeo90k", root, samples, split=split)
