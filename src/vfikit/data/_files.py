"""Shared pieces of the benchmark loaders: a triplet described by three file paths, and checks.

Every loader builds its list of :class:`TripletFiles` up front and verifies that each file exists,
so a missing or malformed dataset fails at construction with a :class:`VfikitError` that names
the file, instead of a traceback halfway through an evaluation.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from torch.utils.data import Dataset

from vfikit.data.triplet import Triplet
from vfikit.errors import VfikitError
from vfikit.image_files import load_rgb


@dataclass(frozen=True)
class TripletFiles:
    """Paths of one sample: first input, second input, ground truth at time ``t``."""

    frame0: Path
    frame1: Path
    target: Path
    t: float = 0.5
    key: str = ""


def require_dir(path: Path, what: str) -> Path:
    """``path`` if it is a directory, else a VfikitError naming it."""
    if not path.is_dir():
        raise VfikitError(f"{what}: directory not found: {path}")
    return path


def require_file(path: Path, what: str) -> Path:
    """``path`` if it is a file, else a VfikitError naming it."""
    if not path.is_file():
        raise VfikitError(f"{what}: file not found: {path}")
    return path


def check_files_exist(samples: Sequence[TripletFiles], what: str) -> None:
    """Raise a VfikitError naming the first missing file (and how many are missing)."""
    missing = [p for s in samples for p in (s.frame0, s.frame1, s.target) if not p.is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more missing files)" if len(missing) > 1 else ""
        raise VfikitError(f"{what}: file not found: {missing[0]}{more}")


def read_list_file(path: Path, what: str) -> list[tuple[int, str]]:
    """Non-blank lines of a text list as ``(line_number, stripped_line)``."""
    require_file(path, what)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise VfikitError(f"{what}: {path} is not a UTF-8 text list ({exc})") from None
    return [(i + 1, line.strip()) for i, line in enumerate(text.splitlines()) if line.strip()]


class FileTriplets(Dataset):
    """A benchmark as a list of :class:`TripletFiles`; ``dataset[i]`` reads one :class:`Triplet`.

    Attributes: ``name`` (e.g. ``"middlebury"``), ``root``, ``split`` (or None), ``samples``.
    Frames are read with :func:`vfikit.image_files.load_rgb` (uint8 / 255, float32, like torchvision's
    ``ToTensor``): (3, H, W) RGB in [0, 1].
    """

    def __init__(self, name: str, root: Path, samples: list[TripletFiles], split: str | None = None):
        if not samples:
            raise VfikitError(f"{name}: no samples found under {root}")
        check_files_exist(samples, name)
        self.name = name
        self.root = root
        self.split = split
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Triplet:
        s = self.samples[index]
        frame0, frame1, target = (load_rgb(p) for p in (s.frame0, s.frame1, s.target))
        if not frame0.shape == frame1.shape == target.shape:
            raise VfikitError(
                f"{self.name}: sample {s.key!r} has frames of different sizes: "
                f"{s.frame0} {tuple(frame0.shape)}, {s.frame1} {tuple(frame1.shape)}, {s.target} {tuple(target.shape)}"
            )
        return Triplet(frame0, frame1, target, t=s.t, key=s.key)

    def __iter__(self) -> Iterator[Triplet]:
        for i in range(len(self)):
            yield self[i]

    @property
    def keys(self) -> list[str]:
        return [s.key for s in self.samples]

    def describe(self) -> dict:
        """What the summary JSON records about the dataset."""
        return {"name": self.name, "root": str(self.root), "split": self.split, "samples": len(self)}


def input_gt_layout(root: Path, name: str, *, input_dir: str, gt_dir: str,
                    first: str = "frame10.png", second: str = "frame11.png",
                    target: str = "frame10i11.png") -> list[TripletFiles]:
    """``<input_dir>/<seq>/{first,second}`` + ``<gt_dir>/<seq>/<target>``; sequences taken from ``gt_dir``.

    Used by Middlebury (both layouts) and DAVIS. Sequences are sorted by name, which is the
    evaluation order of CDFI's ``mytest.py``.
    """
    inputs = require_dir(root / input_dir, name)
    gts = require_dir(root / gt_dir, name)
    seqs = sorted(p.name for p in gts.iterdir() if p.is_dir())
    if not seqs:
        raise VfikitError(f"{name}: no sequence folders in {gts}")
    return [
        TripletFiles(inputs / s / first, inputs / s / second, gts / s / target, 0.5, s)
        for s in seqs
    ]
