"""Calibrate the scene-cut score on real frames from ../shared/data (numbers quoted in docs/video.md).

Motion: consecutive frames (and frames 3 and 6 apart, i.e. much faster motion) of two real clips.
Cuts: every pairing of frames from two unrelated clips, and of the 12 Middlebury scenes.

    PYTHONPATH=src python benchmarks/video_scene_calibration.py
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import av
import cv2
import numpy as np

from vfikit.timeline.scenes import DEFAULT_CUT_THRESHOLD, cut_score, signature

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def main() -> int:
    if not DATA.is_dir():
        print(f"needs {DATA}", file=sys.stderr)
        return 1
    with av.open(str(DATA / "clips/davis_car_turn/car-turn.mp4")) as c:
        car = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    seq = [cv2.imread(str(p))[..., ::-1] for p in sorted((DATA / "clips/cdfi_img_seq").glob("*.jpg"))]
    mid = [cv2.resize(cv2.imread(str(p))[..., ::-1], (640, 480))
           for p in sorted((DATA / "middlebury_others/input").glob("*/frame10.png"))]  # fmt: skip

    def sig(frame):
        return signature(frame, 255)

    sc, ss, sm = [sig(f) for f in car], [sig(f) for f in seq], [sig(f) for f in mid]
    for name, sigs in (("car-turn", sc), ("cdfi_img_seq", ss)):
        for step in (1, 3, 6):
            scores = [cut_score(a, b) for a, b in zip(sigs, sigs[step:])]
            print(f"motion  {name:13s} frames {step} apart: max {max(scores):.3f}")
    cuts = np.array([cut_score(a, b) for a in sc[::5] for b in ss[::5]]
                    + [cut_score(a, b) for a, b in itertools.permutations(sm, 2)])  # fmt: skip
    print(f"cuts    n={len(cuts)}: min {cuts.min():.3f}, 1st percentile {np.percentile(cuts, 1):.3f}, "
          f"median {np.median(cuts):.3f}; detected at the default {DEFAULT_CUT_THRESHOLD}: "
          f"{(cuts >= DEFAULT_CUT_THRESHOLD).mean():.1%}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
