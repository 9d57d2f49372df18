"""Benchmark datasets by name, for ``vfikit eval`` and ``vfikit.engine.evaluate``.

``open_benchmark("middlebury", root)`` returns a dataset of :class:`vfikit.data.Triplet`
(``len()`` and indexing). ``split`` selects the Vimeo-90K list (``test``/``train``) or the
SNU-FILM difficulty (``easy``/``medium``/``hard``/``extreme``); the other benchmarks have none.
"""

from __future__ import annotations

from pathlib import Path

from vfikit.errors import VfikitError

# name -> (split choices or None, default split, one-line description)
BENCHMARKS: dict[str, tuple[tuple[str, ...] | None, str | None, str]] = {
    "middlebury": (None, None, "Middlebury 'other' (input/ + gt/ or other-data/ + other-gt-interp/)"),
    "ucf101": (None, None, "UCF101-DVF triplets (<id>/frame_00.png, frame_01_gt.png, frame_02.png)"),
    "vimeo90k": (("test", "train"), "test", "Vimeo-90K triplets (sequences/ + tri_testlist.txt)"),
    "davis": (None, None, "DAVIS triplets (input/<seq>/frame10.png, frame11.png + gt/<seq>/frame10i11.png)"),
    "snufilm": (("easy", "medium", "hard", "extreme"), "medium", "SNU-FILM (test-<split>.txt)"),
}


def open_benchmark(name: str, root: str | Path, split: str | None = None):
    """The dataset ``name`` read from ``root`` (see :data:`BENCHMARKS`)."""
    if name not in BENCHMARKS:
        raise VfikitError(f"unknown dataset {name!r}; choose one of {', '.join(BENCHMARKS)}")
    splits, default, _ = BENCHMARKS[name]
    if splits is None and split is not None:
        raise VfikitError(f"dataset {name!r} has no splits, got split={split!r}")
    split = split if split is not None else default
    if splits is not None and split not in splits:
        raise VfikitError(f"dataset {name!r}: unknown split {split!r}; choose one of {', '.join(splits)}")
    if name == "middlebury":
        from vfikit.data.middlebury import MiddleburyOthers

        return MiddleburyOthers(root)
    if name == "ucf101":
        from vfikit.data.ucf101 import UCF101DVF

        return UCF101DVF(root)
    if name == "vimeo90k":
        from vfikit.data.vimeo90k import Vimeo90KTriplet

        return Vimeo90KTriplet(root, split=split)
    if name == "davis":
        from vfikit.data.davis import DavisTriplets

        return DavisTriplets(root)
    from vfikit.data.snufilm import SNUFILM

    return SNUFILM(root, mode=split)
