"""Throughput and memory of the video pipeline itself (decode -> model -> encode), with a free model.

A linear blend stands in for the network, so the numbers show the tool's own overhead: what is
left for the model. Peak memory must not grow with the clip length (bounded queues).

    PYTHONPATH=src python benchmarks/video_pipeline.py --frames 100 600 1500 --size 640x360
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch


class Blend:
    """Interpolator stand-in: (1 - t) a + t b."""

    arbitrary_t = True

    def reachable_t(self, t: float) -> float:
        return t

    def __call__(self, f0: torch.Tensor, f1: torch.Tensor, t: float = 0.5) -> torch.Tensor:
        return (1 - t) * f0 + t * f1


def make_clip(path: Path, n: int, width: int, height: int) -> None:
    rng = np.random.default_rng(0)
    base = np.kron(rng.integers(40, 200, (height // 8, width // 8, 3)), np.ones((8, 8, 1))).astype(np.uint8)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.options = {"preset": "ultrafast", "crf": "18"}
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(np.roll(base, 3 * i, axis=1), format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, 30)
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def run_one(clip: Path, out: Path) -> None:
    import vfikit

    start = time.perf_counter()
    result = vfikit.interpolate_video(clip, out, interpolator=Blend(), factor=2, progress=False, force=True)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{result.stats.source_frames:5d} source -> {result.stats.output_frames:5d} output frames: "
          f"{seconds:6.1f} s, {result.stats.output_frames / seconds:6.1f} output frames/s, peak RSS {peak:.0f} MB")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--frames", type=int, nargs="+", default=[100, 600])
    p.add_argument("--size", default="640x360")
    p.add_argument("--one", nargs=2, help=argparse.SUPPRESS)  # internal: run one clip in this process
    args = p.parse_args()
    if args.one:
        run_one(Path(args.one[0]), Path(args.one[1]))
        return 0
    width, height = map(int, args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.frames:
            clip = Path(tmp) / f"clip{n}.mp4"
            make_clip(clip, n, width, height)
            # a fresh process per length, so peak memory is not carried over from the clip generation
            subprocess.run([sys.executable, __file__, "--one", str(clip), str(Path(tmp) / f"out{n}.mp4")], check=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
