"""Helpers for the video tool tests: tiny generated videos and image folders, stand-in models.

Videos are made with PyAV in ``tmp_path`` (64x48, a few frames) so the tests need no data and
run in seconds. The registered stand-in models blend linearly and count their calls.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from vfikit.errors import VfikitError
from vfikit.models.base import VFIModel


def pattern_frames(n: int, width: int = 64, height: int = 48, *, seed: int = 0, step: int = 3) -> list[np.ndarray]:
    """Textured frames with a bright square moving ``step`` px per frame (H, W, 3) uint8."""
    rng = np.random.default_rng(seed)
    base = (rng.random((height // 4, width // 4, 3)) * 120 + 40).astype(np.uint8)
    base = np.kron(base, np.ones((4, 4, 1), np.uint8))
    frames = []
    for i in range(n):
        frame = base.copy()
        x = (4 + i * step) % (width - 12)
        frame[12:24, x : x + 12] = (250, 240, 30)
        frames.append(frame)
    return frames


def smooth_frames(n: int, width: int = 64, height: int = 48) -> list[np.ndarray]:
    """Saturated, smoothly varying colours that move: colour-conversion errors show, chroma subsampling does not."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    frames = []
    for i in range(n):
        r = 128 + 100 * np.sin((x + 2 * i) / 25)
        g = 128 + 100 * np.cos((y - i) / 20)
        b = 128 + 100 * np.sin((x + y + 3 * i) / 30)
        frames.append(np.clip(np.stack([r, g, b], axis=2), 0, 255).round().astype(np.uint8))
    return frames


def solid_frames(n: int, color: tuple[int, int, int], width: int = 64, height: int = 48) -> list[np.ndarray]:
    return [np.full((height, width, 3), color, np.uint8) for _ in range(n)]


def write_video(
    path: Path,
    frames: list[np.ndarray],
    *,
    fps: Fraction | int = 25,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    audio: bool = False,
    subtitles: bool = False,
    pts: list[int] | None = None,
    time_base: Fraction | None = None,
    options: dict | None = None,
    container_options: dict | None = None,
) -> Path:
    """Encode ``frames`` (uint8 or uint16 (H, W, 3)) with optional 48 kHz stereo AAC audio.

    ``pts``/``time_base`` give explicit (e.g. variable) frame timestamps; ``container_options`` go to the
    muxer (e.g. ``{"movflags": "faststart"}``).
    """
    fps = Fraction(fps)
    container = av.open(str(path), "w", options=container_options or {})
    stream = container.add_stream(codec, rate=fps)
    stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], pix_fmt
    tb = time_base or 1 / fps
    stream.time_base = tb
    stream.codec_context.time_base = tb
    if codec == "libx264":
        stream.options = {"crf": "0", "preset": "ultrafast", **(options or {})}
    elif codec == "libx265":
        stream.options = {"x265-params": "log-level=error:lossless=1", **(options or {})}
    elif options:
        stream.options = options
    astream = container.add_stream("aac", rate=48000, layout="stereo") if audio else None
    sstream = container.add_stream("mov_text" if path.suffix in (".mp4", ".mov") else "subrip") if subtitles else None
    if sstream is not None:
        sstream.time_base = Fraction(1, 1000)
    for i, array in enumerate(frames):
        fmt = "rgb24" if array.dtype == np.uint8 else "rgb48le"
        frame = av.VideoFrame.from_ndarray(array, format=fmt)
        frame.pts = pts[i] if pts is not None else i
        frame.time_base = tb
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    if astream is not None:
        duration = float(len(frames) / fps) if pts is None else float((pts[-1] + 1) * tb)
        n = int(duration * 48000)
        t = np.arange(n) / 48000
        tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for start in range(0, n, 1024):
            chunk = np.stack([tone[start : start + 1024]] * 2)
            aframe = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp", layout="stereo")
            aframe.sample_rate = 48000
            aframe.pts = start
            aframe.time_base = Fraction(1, 48000)
            for packet in astream.encode(aframe):
                container.mux(packet)
        for packet in astream.encode():
            container.mux(packet)
    container.close()
    return path


def decode_video(path: Path, fmt: str = "rgb24", **kwargs) -> tuple[list[Fraction], list[np.ndarray]]:
    """All frames of the first video stream with their exact times (seconds), converted as vfikit does."""
    from vfikit.video.sources import swscale_flags

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        tb = Fraction(s.time_base)
        times, frames = [], []
        for f in c.decode(s):
            times.append(Fraction(f.pts) * tb)
            frames.append(f.to_ndarray(format=fmt, interpolation=swscale_flags(decode=True), **kwargs))
    return times, frames


class BlendInterpolator:
    """Stand-in for vfikit.Interpolator: linear blend at any t, clamped, counting calls."""

    def __init__(self, arbitrary_t: bool = True) -> None:
        self.arbitrary_t = arbitrary_t
        self.calls: list[tuple[int, float]] = []

    def reachable_t(self, t: float) -> float:
        if self.arbitrary_t:
            return t
        return min((0.0, 0.5, 1.0), key=lambda r: abs(r - t))

    def __call__(self, frame0: torch.Tensor, frame1: torch.Tensor, t: float = 0.5) -> torch.Tensor:
        if not self.arbitrary_t and t != 0.5:
            raise VfikitError(f"this stand-in only renders t=0.5, got {t}")
        self.calls.append((frame0.shape[0], t))
        return ((1 - t) * frame0 + t * frame1).clamp(0, 1)




# -- stand-in models, so that tests can drive `vfikit interpolate --model ...` -----------------


class BlendNet(VFIModel):
    """Linear blend at any t; records (batch, t) of every call in ``BlendNet.calls``."""

    arbitrary_t = True
    calls: list[tuple[int, float]] = []  # noqa: RUF012 - shared on purpose: the CLI builds its own instance
    kill_after: int | None = None  # raise KeyboardInterrupt on this call (a simulated Ctrl-C / kill)

    def forward(self, frame0, frame1, t=None, return_aux=False):
        t = 0.5 if t is None else t
        if not self.arbitrary_t and float(torch.as_tensor(t).flatten()[0]) != 0.5:
            raise VfikitError(f"{type(self).__name__} only renders t=0.5, got {t}")
        if BlendNet.kill_after is not None and len(BlendNet.calls) >= BlendNet.kill_after:
            raise KeyboardInterrupt
        BlendNet.calls.append((frame0.shape[0], float(torch.as_tensor(t).flatten()[0])))
        tt = torch.as_tensor(t, dtype=frame0.dtype, device=frame0.device).reshape(-1, 1, 1, 1)
        out = (1 - tt) * frame0 + tt * frame1
        return (out, {}) if return_aux else out


class MidNet(BlendNet):
    arbitrary_t = False


class NeedsBigFrames(BlendNet):
    min_size = 128


# name, factory, catalog info: registered for one test by the ``models`` fixture (conftest.py)
TEST_MODELS = [
    ("video_test_blend", lambda **kw: BlendNet(), {"description": "linear blend (tests only)", "arbitrary_t": True}),
    ("video_test_mid", lambda **kw: MidNet(), {"description": "t=0.5 blend (tests only)"}),
    ("video_test_big", lambda **kw: NeedsBigFrames(), {"description": "needs 128 px", "arbitrary_t": True}),
]
