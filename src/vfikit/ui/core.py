"""The web page's logic without the web: model choices, uploads, timing choices and the preview.

Everything here calls the library the CLI calls (``vfikit.video.defaults``, ``vfikit.video.sources``,
``vfikit.timeline.timing``), so the page accepts what ``vfikit interpolate`` accepts and refuses the rest
with the same messages. Uploaded files are only read from the page's own upload folder and copied
into a private folder under names chosen here: a name sent by the browser is shown, never opened.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from vfikit.errors import VfikitError
from vfikit.image_files import IMAGE_SUFFIXES
from vfikit.ui import DEFAULT_MAX_UPLOAD_MB
from vfikit.video.sources import VIDEO_SUFFIXES, natural_key

FACTOR_TARGETS = {"2x": 2, "4x": 4, "8x": 8}
TARGETS = (*FACTOR_TARGETS, "frame rate", "slow motion")
DEFAULT_PAIR_FPS = "2"  # two images become a clip: the time between them is 1/2 s unless changed


# -- models ----------------------------------------------------------------------------------
# What each model is for, in one line (the menu's legend); others show their catalog description.
PURPOSES = {
    "guided_adacof_k5_fast": "vfikit's own trained model: the best quality here, and the quicker of the two "
                             "trained ones",
    "guided_adacof_k5": "the earlier trained model, its network at full resolution: slower and a little behind "
                        "guided_adacof_k5_fast",
    "flow_dis": "classical optical flow, no training: fast; good on slow, smooth motion, tears on fast motion",
    "overlay": "a cross-fade of the two frames, no model: the baseline to compare the others against",
}


@dataclass(frozen=True)
class ModelChoice:
    """One entry of the model menu; ``name`` None means the default model (as the CLI without --model)."""

    label: str
    name: str | None
    trained: bool
    purpose: str = ""


def model_choices(device: str = "cpu") -> list[ModelChoice]:
    """The default model first, then other models whose trained weights are installed, then weight-free ones.

    Weights that would have to be downloaded first (official checkpoints) are left out: the page never
    starts a download; ``vfikit interpolate --model NAME.official`` does.
    """
    from vfikit.models.catalog import get_entry, list_models, split_name
    from vfikit.runtime import packaged_weights
    from vfikit.video.defaults import default_model

    def purpose(name: str) -> str:
        arch = split_name(name)[0]
        return PURPOSES.get(Path(arch).stem if arch.endswith(".vfikit") else arch, get_entry(arch).description)

    choices = []
    try:
        default = default_model(device)
    except VfikitError:  # a development checkout without packaged weights
        default = None
    if default is not None:
        choices.append(ModelChoice(f"{split_name(default)[0]} (default, trained)", None, True, purpose(default)))
    for name in list_models(pretrained=True):
        arch, tag = split_name(name)
        spec = get_entry(arch).weights[tag or ""]
        if name == default or not spec.filename or packaged_weights(spec.filename) is None:
            continue
        choices.append(ModelChoice(f"{name} (trained)", name, True, purpose(name)))
    for arch in list_models():
        if get_entry(arch).family == "classical":
            choices.append(ModelChoice(f"{arch} (no weights)", arch, False, purpose(arch)))
    return choices


def model_legend(choices: Sequence[ModelChoice]) -> str:
    """One Markdown line per model: its menu name and what it is for."""
    return "\n".join(f"- **{c.label.split(' (')[0]}**: {c.purpose}" for c in choices)


def find_choice(label: str | None, choices: Sequence[ModelChoice]) -> ModelChoice:
    """The menu entry with this label (the first, the default, for None)."""
    if not choices:
        raise VfikitError("no model is available: install vfikit with its packaged weights")
    if label is None:
        return choices[0]
    for choice in choices:
        if choice.label == label:
            return choice
    raise VfikitError(f"unknown model choice {label!r}; choose one from the list")


# -- uploads ---------------------------------------------------------------------------------
@dataclass
class StagedInput:
    """Uploaded files copied into a private folder: a video, or two images in name order."""

    kind: str  # "video" or "pair"
    folder: Path
    paths: tuple[Path, ...]
    names: tuple[str, ...]  # the uploaded names, for messages only
    width: int
    height: int
    frames: int | None  # video: frame count when known; pair: 2
    fps: Fraction | None = None
    duration: float | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def pairs(self) -> int:
        """How many neighbouring frame pairs there are (at least 1)."""
        return max(1, (self.frames or 2) - 1)

    def describe(self) -> str:
        """One line about the input for the page."""
        if self.kind == "pair":
            return f"two images, {self.width}x{self.height}: {self.names[0]} then {self.names[1]}"
        parts = [f"{self.names[0]}: {self.width}x{self.height}"]
        if self.frames:
            parts.append(f"{self.frames} frames")
        if self.fps:
            parts.append(f"{float(self.fps):.3g} fps")
        if self.duration:
            parts.append(f"{self.duration:.2f} s")
        return ", ".join(parts)

    @property
    def stem(self) -> str:
        """The start of download names: the video's name, or both images' names, without suffixes."""
        stems = [Path(name).stem for name in self.names]
        text = "-".join(stems) if self.kind == "pair" else stems[0]
        return re.sub(r"[^\w.-]+", "_", text).strip("._") or "result"

    def clean(self, message: str) -> str:
        """``message`` with the private paths replaced by the uploaded names (and no raw ``[Errno N]``)."""
        for path, name in zip(self.paths, self.names):
            message = message.replace(str(path), name).replace(path.name, name)
        return clean_message(message.replace(str(self.folder), "upload"))

    def copy_to(self, folder: Path) -> StagedInput:
        """The same input in another private folder (hard links where possible)."""
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        paths = []
        for path in self.paths:
            paths.append(_link_or_copy(path, folder / path.name))
        return StagedInput(self.kind, folder, tuple(paths), self.names, self.width, self.height, self.frames,
                           self.fps, self.duration, self.notes)

    def remove(self) -> None:
        """Delete the private copy."""
        shutil.rmtree(self.folder, ignore_errors=True)


def clean_message(message: str) -> str:
    """A library message without the operating system's error numbers (``[Errno 1094995529] ``)."""
    return re.sub(r"\[Errno -?\d+\]\s*", "", message)


def _link_or_copy(src: Path, dst: Path) -> Path:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)
    return dst


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def _display_name(path: Path) -> str:
    """The uploaded file's name as shown on the page (printable, at most 80 characters)."""
    name = "".join(ch for ch in path.name if ch.isprintable()) or "upload"
    return name if len(name) <= 80 else name[:38] + "..." + name[-39:]


def stage_upload(
    files: Sequence[str | os.PathLike] | None,
    root: Path,
    *,
    upload_root: Path | None,
    max_bytes: int = DEFAULT_MAX_UPLOAD_MB * 1024 * 1024,
) -> StagedInput:
    """Check uploaded files and copy them into a new private folder under ``root``.

    Accepts one video or two images (ordered by name: the first is frame 0). ``upload_root``: the only
    folder files are read from (the web framework's upload folder); None skips that check (tests).
    Raises VfikitError with the CLI's message for anything the CLI would refuse.
    """
    paths = [Path(f) for f in files or []]
    if not paths:
        raise VfikitError("drop a video, or two images")
    for path in paths:
        if upload_root is not None and not _inside(path, upload_root):
            raise VfikitError("files are only read from the page's own upload folder")
        if not path.is_file():
            raise VfikitError(f"upload {_display_name(path)} was not received completely; try again")
        size = path.stat().st_size
        if size > max_bytes:
            raise VfikitError(
                f"{_display_name(path)} is {size / 2**20:.0f} MB; the upload limit is {max_bytes / 2**20:.0f} MB "
                "(start the page with --max-upload-mb to change it)"
            )
    suffixes = [p.suffix.lower() for p in paths]
    if len(paths) == 1 and suffixes[0] in VIDEO_SUFFIXES:
        kind = "video"
    elif len(paths) == 2 and all(s in IMAGE_SUFFIXES for s in suffixes):
        kind = "pair"
        paths.sort(key=lambda p: natural_key(Path(_display_name(p))))
        suffixes = [p.suffix.lower() for p in paths]
    elif len(paths) == 1 and suffixes[0] in IMAGE_SUFFIXES:
        raise VfikitError(f"{_display_name(paths[0])} is a single image; give two images (or a video)")
    elif len(paths) == 1:
        raise VfikitError(
            f"{_display_name(paths[0])} is not a video or image file this tool reads "
            f"(videos: {', '.join(VIDEO_SUFFIXES[:6])}, ...; images: {', '.join(IMAGE_SUFFIXES)})"
        )
    else:
        raise VfikitError(f"give one video or two images, got {len(paths)} files")
    folder = root / uuid.uuid4().hex
    folder.mkdir(mode=0o700, parents=True)
    names = tuple(_display_name(p) for p in paths)
    local = ["input" + suffixes[0]] if kind == "video" else [f"image{i}{s}" for i, s in enumerate(suffixes)]
    staged = StagedInput(kind, folder, tuple(_link_or_copy(p, folder / n) for p, n in zip(paths, local)), names,
                         0, 0, None)
    try:
        return _probe(staged)
    except VfikitError as exc:
        staged.remove()
        raise VfikitError(staged.clean(str(exc))) from None
    except BaseException:
        staged.remove()
        raise


def _probe(staged: StagedInput) -> StagedInput:
    """Fill in size and length with the CLI's own checks (``probe_video`` / ``probe_images``)."""
    from vfikit.video.sources import probe_images, probe_video

    if staged.kind == "pair":
        info = probe_images(list(staged.paths))
        staged.width, staged.height, staged.frames, staged.notes = info.width, info.height, 2, info.notes
        return staged
    video = probe_video(staged.paths[0])
    frames = video.frame_count
    if frames is None and video.duration and video.average_rate:
        frames = round(video.duration * video.average_rate)
    staged.width, staged.height, staged.frames = video.width, video.height, frames
    staged.fps = video.average_rate
    staged.duration = float(video.duration) if video.duration else None
    return staged


# -- timing ----------------------------------------------------------------------------------
def timing_kwargs(target: str, value: str | float | None = None) -> dict[str, Any]:
    """``interpolate_video`` timing arguments for a page choice: ``2x``/``4x``/``8x``, ``frame rate``
    (value: e.g. ``60`` or ``24000/1001``) or ``slow motion`` (value: how many times slower, a whole number).

    Checked with the CLI's own rules (``TimingSpec.make``), so the messages match.
    """
    from vfikit.timeline.timing import TimingSpec

    text = "" if value is None else str(value).strip()
    if target in FACTOR_TARGETS:
        kwargs: dict[str, Any] = {"factor": FACTOR_TARGETS[target]}
    elif target == "frame rate":
        if not text:
            raise VfikitError("enter the target frame rate, e.g. 60, 25 or 24000/1001")
        kwargs = {"fps": text}
    elif target == "slow motion":
        kwargs = {"slowmo": str(slowmo_factor(text))}
    else:
        raise VfikitError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
    TimingSpec.make(**kwargs)
    return kwargs


def slowmo_factor(text: str) -> int:
    """The slow-motion field: how many times slower, a whole number from 2."""
    hint = "enter how many times slower, a whole number such as 2, 4 or 8"
    if not text:
        raise VfikitError(f"slow motion: {hint}")
    if not re.fullmatch(r"\d+", text) or int(text) < 2:
        raise VfikitError(f"invalid slow-motion factor {text!r}: {hint}")
    return int(text)


def target_suffix(timing: dict[str, Any]) -> str:
    """The target in download names: ``2x``, ``60fps``, ``23.976fps``, ``slowmo4``."""
    if "factor" in timing:
        return f"{timing['factor']}x"
    from vfikit.timeline.timing import parse_rate

    if "slowmo" in timing:
        return f"slowmo{timing['slowmo']}"
    rate = parse_rate(timing["fps"])
    return f"{float(rate):.3f}".rstrip("0").rstrip(".") + "fps"


def plan_text(staged: StagedInput, timing: dict[str, Any], pair_fps: str, seconds_per_frame: float | None) -> str:
    """What a run will make, before it starts: frames and rates in and out, and a time estimate.

    ``seconds_per_frame``: the model's time for one frame of this input (from a preview), or None.
    """
    from vfikit.timeline.timing import TimingSpec, parse_rate

    spec = TimingSpec.make(**timing)
    if staged.kind == "pair":
        rate = parse_rate(pair_fps or DEFAULT_PAIR_FPS, what="frame rate of the two images")
        count = spec.estimate_count(2, 1 / rate, tail=False) or 2
        made = max(0, count - 2) if spec.factor else max(0, count - 1)
        if not made:
            return f"no frame falls between two images {fraction_seconds(1 / rate)} apart at this target"
        what = "a PNG" if made == 1 else "a zip of PNGs"
        text = f"two images {fraction_seconds(1 / rate)} apart: {made} in-between frame(s), {what}"
    else:
        rate, frames = staged.fps, staged.frames or 0
        span = Fraction(staged.duration).limit_denominator(10**6) if staged.duration else None
        count = spec.estimate_count(frames, span, tail=True) if frames else None
        out_rate = spec.output_rate(rate)
        if not (rate and count and out_rate):
            return "the output's length is unknown until the run (the video does not say its frame count)"
        made = max(0, count - frames) if spec.factor else count
        text = (f"{rate_text(rate)} fps, {frames} frames \u2192 {rate_text(out_rate)} fps, {count} frames, "
                f"{float(count / out_rate):.2f} s")
    if seconds_per_frame is None:
        return text + "; press Preview to estimate the time"
    return text + f"; about {estimate_text(made * seconds_per_frame)} here"


def rate_text(rate: Fraction) -> str:
    """``25``, ``29.97``."""
    return f"{float(rate):.3f}".rstrip("0").rstrip(".")


def fraction_seconds(seconds: Fraction) -> str:
    """``0.5 s``."""
    return f"{float(seconds):.3g} s"


def estimate_text(seconds: float) -> str:
    """A rough duration: ``5 s``, ``40 s``, ``3 min``, ``2 h 10 min``."""
    if seconds < 60:
        return f"{max(1, math.ceil(seconds))} s"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h {minutes % 60} min"


# -- preview ---------------------------------------------------------------------------------
@dataclass
class Preview:
    """The frame average and the model's middle frame of one pair, (H, W, 3) uint8."""

    average: np.ndarray
    middle: np.ndarray
    model: str
    pair: int
    seconds: float


def read_pair(staged: StagedInput, index: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Frames ``index`` and ``index + 1`` of the input as (H, W, 3) uint8 or uint16 arrays."""
    from vfikit.video.sources import VideoReader, probe_images, probe_video, read_frame

    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise VfikitError(f"the pair number must be a whole number >= 0, got {index!r}")
    if staged.kind == "pair":
        bits = probe_images(list(staged.paths)).bits
        return read_frame(staged.paths[0], bits), read_frame(staged.paths[1], bits)
    info = probe_video(staged.paths[0])
    start = None
    if index and info.average_rate:  # seek to half a frame before frame ``index``
        start = max(Fraction(0), (Fraction(index) - Fraction(1, 2)) / info.average_rate)
    frames = [frame for _, frame in VideoReader(info, start=start, max_frames=2)]
    if len(frames) < 2:
        raise VfikitError(f"pair {index} is past the end of the video; choose a smaller number")
    return frames[0], frames[1]


def _to_tensor(frame: np.ndarray):
    import torch

    scale = 255.0 if frame.dtype == np.uint8 else 65535.0
    return torch.from_numpy(frame.astype(np.float32) / scale).permute(2, 0, 1)


class Previewer:
    """Renders previews; keeps the last model built, and runs one preview at a time."""

    def __init__(self, device: str = "auto") -> None:
        self.device = device
        self._lock = threading.Lock()
        self._cached: tuple[str | None, Any] | None = None

    def interpolator(self, name: str | None) -> Any:
        """The interpolator the video tool would build for ``name`` (None: the default model)."""
        from vfikit.runtime import resolve_device
        from vfikit.video.defaults import DEFAULT_BISECT_DEPTH, build_interpolator

        if self._cached is None or self._cached[0] != name:
            self._cached = None  # free the previous model first
            device = str(resolve_device(self.device))
            self._cached = (name, build_interpolator(name, device=device, max_depth=DEFAULT_BISECT_DEPTH))
        return self._cached[1]

    def __call__(self, staged: StagedInput, name: str | None, index: int = 0) -> Preview:
        """The frame average and the middle frame of pair ``index``."""
        from vfikit.image_files import to_uint8
        from vfikit.video.defaults import describe_interpolator

        with self._lock:
            try:
                a, b = read_pair(staged, index)
                interp = self.interpolator(name)
                f0, f1 = _to_tensor(a), _to_tensor(b)
                began = time.perf_counter()  # the model's time for one frame, without loading it
                middle = interp(f0, f1, 0.5)
                seconds = time.perf_counter() - began
            except VfikitError as exc:
                raise VfikitError(staged.clean(str(exc))) from None
            average = to_uint8((f0 + f1) / 2)
            return Preview(average, to_uint8(middle), describe_interpolator(interp), index, seconds)
