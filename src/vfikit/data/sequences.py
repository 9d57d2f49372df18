"""Frame folders and video files turned into Triplets (training and evaluation).

A *clip* is a folder of images (sorted in natural order: ``frame2`` before ``frame10``) or a video
file (decoded with PyAV). ``FrameSequenceDataset`` decodes its clips once into memory as uint8
arrays (short clips: bound memory with ``max_side``/``max_frames``) and enumerates windows: frames
``i`` and ``i + window`` are the inputs, ``i + j`` the target at ``t = j / window`` (``targets=
"middle"``: only ``j = window / 2``; ``"all"``: every ``j``, for arbitrary-t models such as
``edsc_m``). Windows that span a scene cut or a repeated (duplicated) frame are left out.
"""

from __future__ import annotations

import math
import re
import weakref
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vfikit.data.triplet import Triplet
from vfikit.errors import VfikitError
from vfikit.image_files import IMAGE_SUFFIXES

VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".y4m", ".gif")


@dataclass(frozen=True)
class Clip:
    """A video file (``frames`` empty) or an ordered list of image files."""

    name: str
    path: Path
    frames: tuple[Path, ...] = ()

    @property
    def is_video(self) -> bool:
        return not self.frames


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def discover_clips(paths: Sequence[str | Path], *, single_images: bool = True) -> list[Clip]:
    """Clips under ``paths``: video files, folders of images (one clip per folder, recursively).

    With ``single_images``, an image file given directly is a one-frame clip (texture pools use
    that). Missing paths raise VfikitError.
    """
    clips: list[Clip] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            raise VfikitError(f"no such file or folder: {path}")
        if path.is_file():
            suffix = path.suffix.lower()
            if suffix in VIDEO_SUFFIXES:
                clips.append(Clip(path.stem, path))
            elif suffix in IMAGE_SUFFIXES and single_images:
                clips.append(Clip(path.stem, path.parent, (path,)))
            else:
                raise VfikitError(f"{path} is neither a video ({', '.join(VIDEO_SUFFIXES)}) nor a folder of frames")
            continue
        for folder in sorted([path, *(p for p in path.rglob("*") if p.is_dir())]):
            entries = sorted(folder.iterdir(), key=_natural_key)
            images = tuple(p for p in entries if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            rel = folder.relative_to(path.parent).as_posix()
            if images:
                clips.append(Clip(rel, folder, images))
            for video in (p for p in entries if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES):
                clips.append(Clip(f"{rel}/{video.stem}", video))
    return clips


def _listed_clips(paths: Sequence[str | Path], list_file: Path) -> list[Clip]:
    """Clip folders named in ``list_file``, relative to the single root in ``paths``."""
    if len(paths) != 1:
        raise VfikitError(f"a list_file needs exactly one root path, got {len(paths)}: {[str(p) for p in paths]}")
    root = Path(paths[0]).expanduser()
    if not root.is_dir():
        raise VfikitError(f"no such folder: {root}")
    if not list_file.is_file():
        raise VfikitError(f"clip list not found: {list_file}")
    clips = []
    for number, line in enumerate(list_file.read_text().splitlines(), 1):
        entry = line.strip()
        if not entry:
            continue
        folder = root / entry
        if not folder.is_dir():
            raise VfikitError(f"{list_file} line {number}: clip folder {folder} does not exist")
        frames = tuple(sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key))
        clips.append(Clip(entry, folder, frames))
    return clips


def _resize(frame: np.ndarray, max_side: int | None) -> np.ndarray:
    h, w = frame.shape[:2]
    if max_side is None or max(h, w) <= max_side:
        return frame
    import cv2

    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)


def _read_image_uint8(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as img:
            return np.array(img.convert("RGB"))
    except OSError as exc:
        raise VfikitError(f"cannot read image {path}: {exc}") from None


def _iter_video(path: Path) -> Iterator[np.ndarray]:
    """(H, W, 3) uint8 RGB frames of a video through the video tool's decoder
    (:class:`vfikit.video.sources.VideoReader`, ``plain_rgb``: repeated timestamps dropped, truncated files
    refused, the conversion the training data has always used)."""
    from vfikit.video.sources import VideoReader, probe_video

    for _, frame in VideoReader(probe_video(path, drop_alpha=True), plain_rgb=True):
        yield frame


def read_clip(
    clip: Clip, *, max_side: int | None = None, max_frames: int | None = None, spread: bool = False
) -> list[np.ndarray]:
    """Decode a clip to a list of (H, W, 3) uint8 RGB frames, longer side at most ``max_side``.

    ``max_frames`` keeps the first frames, or with ``spread`` frames evenly spaced over the clip.
    """
    if clip.is_video:
        frames = []
        for i, frame in enumerate(_iter_video(clip.path)):
            if max_frames is not None and not spread and i >= max_frames:
                break
            frames.append(_resize(frame, max_side))
    else:
        paths = clip.frames
        if max_frames is not None and not spread:
            paths = paths[:max_frames]
        if max_frames is not None and spread and len(paths) > max_frames:
            paths = tuple(paths[i] for i in np.linspace(0, len(paths) - 1, max_frames).round().astype(int))
        frames = [_resize(_read_image_uint8(p), max_side) for p in paths]
    if max_frames is not None and spread and len(frames) > max_frames:
        frames = [frames[i] for i in np.linspace(0, len(frames) - 1, max_frames).round().astype(int)]
    if frames and any(f.shape != frames[0].shape for f in frames):
        raise VfikitError(f"clip {clip.name}: frames differ in size")
    return frames


_DECODED: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def decoded_clip(clip: Clip, *, max_side: int | None = None, max_frames: int | None = None) -> np.ndarray:
    """The clip's frames as one (T, H, W, 3) uint8 array, shared between callers in this process
    (a training and a validation dataset over the same clips hold one copy)."""
    key = (str(clip.path.resolve()), len(clip.frames), max_side, max_frames)
    cached = _DECODED.get(key)
    if cached is None:
        frames = read_clip(clip, max_side=max_side, max_frames=max_frames)
        cached = np.stack(frames) if frames else np.zeros((0, 1, 1, 3), np.uint8)
        cached.setflags(write=False)
        _DECODED[key] = cached
    return cached


def frame_differences(frames: np.ndarray) -> np.ndarray:
    """Mean absolute difference in [0, 1] between consecutive 32x32 grey thumbnails. (T-1,)."""
    import cv2

    thumbs = np.stack(
        [cv2.resize(f.mean(axis=2, dtype=np.float32), (32, 32), interpolation=cv2.INTER_AREA) for f in frames]
    )
    return np.abs(np.diff(thumbs, axis=0)).mean(axis=(1, 2)) / 255.0


def bad_transitions(frames: np.ndarray, cut_threshold: float | None = 0.12, skip_duplicates: bool = True) -> np.ndarray:
    """Boolean (T-1,): True where frame k -> k+1 is a scene cut or a repeated frame."""
    if len(frames) < 2:
        return np.zeros(0, dtype=bool)
    diff = frame_differences(frames)
    bad = np.zeros(len(diff), dtype=bool)
    if cut_threshold is not None:
        bad |= diff > max(cut_threshold, 6.0 * float(np.median(diff)))
    if skip_duplicates:
        bad |= diff == 0.0
    return bad


class FrameSequenceDataset(torch.utils.data.Dataset):
    """Triplets from frame folders and videos; random access, frames cached in memory as uint8.

    Args:
        paths: video files, frame folders, or folders holding several of them.
        window: frame distance between the two inputs (2: frames i and i+2, target i+1).
        targets: ``"middle"`` (t = 0.5 only; window must be even) or ``"all"`` (t = j / window).
        step: distance between the first frames of consecutive windows.
        max_side, max_frames: downscale frames / keep the first frames of each clip on load.
        segment: [start, end) fraction of each clip's frames to use (e.g. [0, 0.9] to train and
            [0.9, 1] to validate on disjoint frames).
        cut_threshold: thumbnail difference above which a transition is a scene cut (None: keep).
        skip_duplicates: leave out windows containing a repeated frame.
        uint8: return uint8 tensors (training crops them before converting; see transforms.ToFloat).
        cache: decode every clip into memory at construction (needed for scene-cut and duplicate
            detection). ``False`` reads frame-folder images on access instead (large collections
            such as Vimeo-90K septuplets; no cut detection); videos are always decoded up front.
        list_file: a text file naming clip folders (one per line, relative to the single entry of
            ``paths``), e.g. Vimeo-90K's ``sep_trainlist.txt``; blank lines are skipped.
        holdout, part: keep only the clips whose group hashes into the held-out fraction
            (``part="holdout"``) or the others (``"train"``). The group is the first component of
            a ``list_file`` entry (Vimeo: the source video), else the clip name. Stable (crc32).
    Items: ``Triplet(frame0, frame1, target, t, key)`` with (3, H, W) tensors.
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        *,
        window: int = 2,
        targets: str = "middle",
        step: int = 1,
        max_side: int | None = None,
        max_frames: int | None = None,
        segment: Sequence[float] = (0.0, 1.0),
        cut_threshold: float | None = 0.12,
        skip_duplicates: bool = True,
        uint8: bool = False,
        cache: bool = True,
        list_file: str | Path | None = None,
        holdout: float = 0.0,
        part: str = "train",
    ) -> None:
        if window < 2:
            raise VfikitError(f"window must be >= 2 (frames i and i+window), got {window}")
        if targets not in ("middle", "all"):
            raise VfikitError(f"targets must be 'middle' or 'all', got {targets!r}")
        if targets == "middle" and window % 2:
            raise VfikitError(f"targets='middle' needs an even window, got {window}")
        if step < 1:
            raise VfikitError(f"step must be >= 1, got {step}")
        if len(segment) != 2 or not 0.0 <= segment[0] < segment[1] <= 1.0:
            raise VfikitError(f"segment must be [start, end) with 0 <= start < end <= 1, got {list(segment)}")
        if part not in ("train", "holdout") or not 0.0 <= holdout < 1.0:
            raise VfikitError(f"holdout must be in [0, 1) and part 'train' or 'holdout', got {holdout}, {part!r}")
        if part == "holdout" and holdout == 0:
            raise VfikitError("part='holdout' needs holdout > 0")
        self.window, self.uint8, self.max_side = window, uint8, max_side
        if list_file is not None:
            self.clips = _listed_clips(paths, Path(list_file))
        else:
            self.clips = discover_clips(paths, single_images=False)
        if holdout > 0:
            def group(clip: Clip) -> str:
                return clip.name.split("/")[0] if list_file is not None else clip.name

            held = [(zlib.crc32(group(c).encode()) % 10_000) < holdout * 10_000 for c in self.clips]
            self.clips = [c for c, h in zip(self.clips, held) if h == (part == "holdout")]
        if not self.clips:
            raise VfikitError(f"no frame folders or videos found under {[str(p) for p in paths]}"
                              + (f" ({part} part of a {holdout:g} hold-out split)" if holdout else ""))
        offsets = [window // 2] if targets == "middle" else list(range(1, window))
        self.frames: list[np.ndarray | None] = []
        self.items: list[tuple[int, int, int]] = []
        for ci, clip in enumerate(self.clips):
            if cache or clip.is_video:
                arr = decoded_clip(clip, max_side=max_side, max_frames=max_frames)
                self.frames.append(arr)
                n = len(arr)
                bad = bad_transitions(arr, cut_threshold, skip_duplicates)
            else:
                self.frames.append(None)
                n = len(clip.frames) if max_frames is None else min(max_frames, len(clip.frames))
                bad = np.zeros(max(n - 1, 0), dtype=bool)
            lo, hi = math.floor(segment[0] * n), math.floor(segment[1] * n)
            bad_prefix = np.concatenate([[0], np.cumsum(bad)])
            for start in range(lo, hi - window, step):
                if bad_prefix[start + window] - bad_prefix[start] > 0:
                    continue
                self.items.extend((ci, start, j) for j in offsets)
        if not self.items:
            raise VfikitError(
                f"no usable windows of {window + 1} frames in {[c.name for c in self.clips]} "
                f"(segment {list(segment)}, scene cuts and repeated frames excluded)"
            )

    @property
    def memory_bytes(self) -> int:
        return int(sum(a.nbytes for a in self.frames if a is not None))

    def __len__(self) -> int:
        return len(self.items)

    def _frame(self, ci: int, k: int) -> torch.Tensor:
        cached = self.frames[ci]
        array = cached[k] if cached is not None else _resize(_read_image_uint8(self.clips[ci].frames[k]), self.max_side)
        x = torch.from_numpy(array.copy() if not array.flags.writeable else array).permute(2, 0, 1)
        return x.contiguous() if self.uint8 else x.float().div_(255.0)

    def __getitem__(self, index: int) -> Triplet:
        ci, start, j = self.items[index]
        key = f"{self.clips[ci].name}/{start:05d}"
        if self.window != 2:
            key += f"+{j}/{self.window}"
        frame0, frame1 = self._frame(ci, start), self._frame(ci, start + self.window)
        return Triplet(frame0, frame1, self._frame(ci, start + j), j / self.window, key)
