"""Tiny inputs for the web page tests: a 64x48 clip written with PyAV and an image pair."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image


def frames(n: int, width: int = 64, height: int = 48) -> list[np.ndarray]:
    """Textured frames with a yellow square moving 3 px per frame (H, W, 3) uint8."""
    rng = np.random.default_rng(0)
    base = np.kron((rng.random((height // 4, width // 4, 3)) * 120 + 40).astype(np.uint8), np.ones((4, 4, 1), np.uint8))
    out = []
    for i in range(n):
        frame = base.copy()
        x = 4 + 3 * i
        frame[12:24, x : x + 12] = (250, 240, 30)
        out.append(frame)
    return out


def write_clip(path: Path, n: int = 12, fps: int = 12, width: int = 64, height: int = 48) -> Path:
    """An H.264 clip of ``n`` frames at ``fps``."""
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=fps)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.options = {"crf": "10", "preset": "ultrafast"}
    for frame in frames(n, width, height):
        container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
    container.mux(stream.encode())
    container.close()
    return path


def write_pair(folder: Path) -> tuple[Path, Path]:
    """Two PNGs, frames 0 and 2 of the clip's pattern."""
    first, _, second = frames(3)
    a, b = folder / "a.png", folder / "b.png"
    Image.fromarray(first).save(a)
    Image.fromarray(second).save(b)
    return a, b


def video_facts(path: Path) -> tuple[int, float]:
    """(decoded frame count, duration in seconds from the first frame's start to the last frame's end)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        times = [Fraction(f.pts) * stream.time_base for f in container.decode(stream)]
        rate = Fraction(stream.average_rate)  # read while the container is open: PyAV >= 18.1.1 refuses it later
    return len(times), float(times[-1] - times[0] + 1 / rate)
