"""SNU-FILM (Choi et al., CAIN 2020): test triplets at four motion difficulties.

Layout: ``test-{easy,medium,hard,extreme}.txt`` (in ``root`` or ``root/eval_modes``) with three
space-separated image paths per line: first input, target (t = 0.5), second input. The lists
shipped with the dataset spell paths from the CAIN repository root
(``data/SNU-FILM/test/GOPRO_test/...``); such a path is resolved against ``root`` after dropping
the leading components that do not exist there. How many to drop is decided once per list from
its first path and applied to every line, so a missing file is reported, never guessed around.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from vfikit.data._files import FileTriplets, TripletFiles, read_list_file, require_dir
from vfikit.errors import VfikitError

MODES = ("easy", "medium", "hard", "extreme")


def _find_list(root: Path, mode: str) -> Path:
    for candidate in (root / f"test-{mode}.txt", root / "eval_modes" / f"test-{mode}.txt"):
        if candidate.is_file():
            return candidate
    raise VfikitError(f"snufilm: file not found: {root / f'test-{mode}.txt'} (also looked in {root / 'eval_modes'})")


def _strip_count(root: Path, first: PurePosixPath, list_path: Path) -> int:
    parts = first.parts
    for k in range(len(parts)):
        if root.joinpath(*parts[k:]).is_file():
            return k
    raise VfikitError(
        f"snufilm: file not found: {first} (from {list_path}) under {root}, with or without its leading folders"
    )


class SNUFILM(FileTriplets):
    """SNU-FILM triplets of one difficulty (``mode``)."""

    def __init__(self, root: str | Path, mode: str = "medium"):
        if mode not in MODES:
            raise VfikitError(f"snufilm: unknown difficulty {mode!r}; choose one of {', '.join(MODES)}")
        root = require_dir(Path(root), "snufilm")
        list_path = _find_list(root, mode)
        lines = read_list_file(list_path, "snufilm")
        rows = []
        for number, line in lines:
            paths = line.split()
            if len(paths) != 3:
                raise VfikitError(
                    f"snufilm: malformed line {number} of {list_path}: expected 3 image paths, got {len(paths)}"
                )
            rows.append([PurePosixPath(p.replace("\\", "/")) for p in paths])
        skip = _strip_count(root, rows[0][0], list_path) if rows else 0
        samples = []
        for first, middle, last in rows:
            f0, gt, f1 = (root.joinpath(*p.parts[skip:]) for p in (first, middle, last))
            samples.append(TripletFiles(f0, f1, gt, 0.5, PurePosixPath(*middle.parts[skip:]).as_posix()))
        super().__init__("snufilm", root, samples, split=mode)
