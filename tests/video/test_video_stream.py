"""The renderer and the public generator: exact times, copies, cuts, duplicates, batching."""

from __future__ import annotations

import itertools
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from video_helpers import BlendInterpolator, pattern_frames

from vfikit.errors import VfikitError
from vfikit.timeline.frames import ArrayFrames
from vfikit.timeline.render import Renderer, interpolate_frames
from vfikit.timeline.scenes import SceneDetector, cut_score, duplicate_score, signature
from vfikit.timeline.timing import TimingSpec

SHARED = Path(__file__).resolve().parents[2].parent / "shared"


def tensors(n: int, seed: int = 0) -> list[torch.Tensor]:
    return [torch.from_numpy(f).permute(2, 0, 1).float() / 255 for f in pattern_frames(n, seed=seed)]


def test_generator_factor_times_and_values(blend):
    frames = tensors(3)
    out = list(interpolate_frames(blend, frames, factor=4))
    assert [t for t, _ in out] == [Fraction(k, 4) for k in range(9)]
    assert out[0][1] is frames[0] and out[4][1] is frames[1] and out[8][1] is frames[2]  # sources unchanged
    expected = 0.75 * frames[1] + 0.25 * frames[2]
    assert torch.allclose(out[5][1], expected, atol=1e-6)
    assert sorted({t for _, t in blend.calls}) == [0.25, 0.5, 0.75]


def test_generator_timestamps_and_fps(blend):
    frames = tensors(3)
    timed = [(0.0, frames[0]), (Fraction(1, 10), frames[1]), (0.3, frames[2])]
    out = list(interpolate_frames(blend, timed, fps=20, end=0.4))
    assert [t for t, _ in out] == [Fraction(j, 20) for j in range(8)]
    # 0.15 s lies a quarter of the way from 0.1 to 0.3
    assert torch.allclose(out[3][1], 0.75 * frames[1] + 0.25 * frames[2], atol=1e-6)
    assert out[-1][1] is frames[2] and out[-2][1] is frames[2]  # holds after the last frame


def test_batching_gives_the_same_frames():
    frames = tensors(6)
    one, four = BlendInterpolator(), BlendInterpolator()
    a = list(interpolate_frames(one, frames, factor=3))
    b = list(interpolate_frames(four, frames, factor=3, batch_size=4))
    assert len(four.calls) < len(one.calls) and max(n for n, _ in four.calls) == 4
    assert all(torch.equal(x[1], y[1]) and x[0] == y[0] for x, y in zip(a, b))


def test_scene_cut_is_copied_not_blended(blend):
    red = pattern_frames(3, seed=1)
    blue = pattern_frames(3, seed=2)
    blue = [255 - f for f in blue]
    frames = [torch.from_numpy(f).permute(2, 0, 1).float() / 255 for f in red + blue]
    out = list(interpolate_frames(blend, frames, factor=4, scene_threshold=0.12))
    # outputs between frame 2 (last of shot A) and 3 (first of shot B): t = 1/4, 1/2 copy A, 3/4 copies B
    assert out[9][1] is frames[2] and out[10][1] is frames[2] and out[11][1] is frames[3]
    assert all(t != 0.5 or n for n, t in blend.calls)
    assert len(blend.calls) == 3 * 4  # 4 motion pairs x 3 new frames; the cut pair costs nothing


def test_duplicates_are_not_sent_to_the_model(blend):
    frames = tensors(3)
    noisy = (frames[1] + torch.randn_like(frames[1]) * 0.002).clamp(0, 1)  # a re-encoded copy
    out = list(interpolate_frames(blend, [frames[0], frames[1], noisy, frames[2]], factor=2, dup_threshold=0.01))
    assert len(blend.calls) == 2  # pairs (0,1) and (noisy,2)
    assert out[3][1] is frames[1]  # between the duplicates: a copy of the nearest (left at t=1/2)


def test_small_motion_is_not_a_duplicate():
    a = pattern_frames(2, width=256, height=192, step=10)
    sig = [signature(f, 255) for f in a]
    assert duplicate_score(sig[0], sig[1]) > 0.05  # a 12 px square moved: some 8x8 block changed a lot
    kind, _ = SceneDetector().classify(sig[0], sig[1])
    assert kind.value == "motion"


def test_non_arbitrary_model_gets_reachable_times_only():
    interp = BlendInterpolator(arbitrary_t=False)
    frames = tensors(3)
    out = list(interpolate_frames(interp, frames, factor=4))
    assert {t for _, t in interp.calls} == {0.5}
    # t = 3/4 is closest to 1/2 here, so it is rendered at 1/2; t = 1/4 ties to 0 (a copy)
    assert torch.allclose(out[3][1], 0.5 * frames[0] + 0.5 * frames[1], atol=1e-6)
    assert out[1][1] is frames[0]


def test_array_frames_round_trip_is_exact():
    for bits, dtype in ((8, np.uint8), (16, np.uint16)):
        kind = ArrayFrames(bits)
        rng = np.random.default_rng(0)
        arr = rng.integers(0, 2**bits, size=(5, 7, 3)).astype(dtype)
        back = kind.from_model(kind.to_model([arr]))[0]
        assert back.dtype == dtype and np.array_equal(back, arr)


def test_renderer_errors(blend):
    with pytest.raises(VfikitError, match="at least two frames"):
        list(interpolate_frames(blend, tensors(1), factor=2))
    frames = [*tensors(2), torch.zeros(3, 10, 10)]
    with pytest.raises(VfikitError, match="same size"):
        list(interpolate_frames(blend, frames, factor=2))
    with pytest.raises(VfikitError, match="must increase"):
        list(interpolate_frames(blend, [(0, tensors(1)[0]), (0, tensors(1)[0])], factor=2))
    with pytest.raises(VfikitError, match=r"shape \(3, H, W\)"):
        list(interpolate_frames(blend, [torch.zeros(4, 8, 8)] * 2, factor=2))
    with pytest.raises(VfikitError, match="needs timestamps"):
        list(interpolate_frames(blend, tensors(2), fps=30))
    with pytest.raises(VfikitError, match="batch size"):
        Renderer(blend, ArrayFrames(8), TimingSpec.make(), batch_size=0)


def _video_frames(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


@pytest.mark.skipif(not (SHARED / "data" / "clips").is_dir(), reason="../shared/data/clips is not available")
def test_cut_threshold_separates_real_motion_from_real_cuts():
    import cv2

    car = _video_frames(SHARED / "data/clips/davis_car_turn/car-turn.mp4")[:40]
    seq = [cv2.imread(str(p))[..., ::-1] for p in sorted((SHARED / "data/clips/cdfi_img_seq").glob("*.jpg"))[:40]]
    sig_car = [signature(f, 255) for f in car]
    sig_seq = [signature(cv2.resize(f, (640, 360)), 255) for f in seq]
    motion = [cut_score(a, b) for sigs in (sig_car, sig_seq) for a, b in itertools.pairwise(sigs)]
    cuts = [cut_score(a, b) for a in sig_car[::8] for b in sig_seq[::8]]
    threshold = SceneDetector().cut_threshold
    assert max(motion) < threshold / 2
    assert min(cuts) > threshold



def test_a_failing_writer_stops_the_pipeline_at_once_even_when_the_decoder_is_done():
    """The decoder may have read everything and wait to hand over its end marker: it must not hang on."""
    import time

    from vfikit.video.threads import run_pipeline

    class Renderer:  # yields frames without reading its input, so the decoded queue stays full
        detector = None
        stats = None

        def run(self, frames, end):
            for i in range(1000):
                yield Fraction(i), None

    class FailingSink:
        def write(self, when, frame):
            raise OSError(28, "No space left on device")

        def close(self):
            pass

        def abort(self):
            pass

    started = time.perf_counter()
    with pytest.raises(OSError, match="No space"):
        run_pipeline([(Fraction(0), None), (Fraction(1), None)], Renderer(), FailingSink(), queue_size=2)
    assert time.perf_counter() - started < 5  # it waited 30 s for the decoder before


@pytest.mark.parametrize("tail", [False, True])
def test_memory_stays_bounded_however_dense_the_plan(tail):
    """--fps 1e9 planned every frame of an interval in a list before rendering any (issue 25, defect 7):
    memory grew by 25 MB/s and nothing was written. Plans and the render window now stream."""
    import time
    import tracemalloc

    def copy_left(f0, f1, t):  # a free stand-in model: the test measures the plan, not the model
        return f0

    spec = TimingSpec.make(fps=300_000)
    renderer = Renderer(copy_left, ArrayFrames(8), spec, detector=None, batch_size=1)
    source = [(Fraction(0), np.zeros((8, 8, 3), np.uint8)), (Fraction(1), np.ones((8, 8, 3), np.uint8))]
    if tail:  # the holds after the last frame (1 s of them) stream as well
        source = [source[0], (Fraction(1, 300_000), source[1][1])]
    started = time.perf_counter()
    tracemalloc.start()
    try:
        first = list(itertools.islice(renderer.run(iter(source), end=Fraction(2)), 2000))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(first) == 2000 and first[-1][0].time == Fraction(1999, 300_000)
    assert peak < 5_000_000, f"{peak / 1e6:.0f} MB for 2000 frames"
    assert time.perf_counter() - started < 20


def test_planner_streams_an_interval_frame_by_frame():
    import time

    from vfikit.timeline.timing import Planner

    planner = Planner(TimingSpec.make(fps=10**6))
    assert list(planner.add(Fraction(0))) == []
    started = time.perf_counter()
    frames = planner.add(Fraction(1))  # a million frames: only the ones asked for are made
    assert [o.index for o in itertools.islice(frames, 3)] == [0, 1, 2]
    assert time.perf_counter() - started < 0.5


def test_a_pair_with_more_frames_than_the_window_is_rendered_in_pieces_exactly(blend):
    frames = tensors(3)
    out = list(interpolate_frames(blend, frames, factor=200, batch_size=2))  # 200 > the 128-frame window
    assert [t for t, _ in out] == [Fraction(k, 200) for k in range(401)]
    assert out[200][1] is frames[1] and out[400][1] is frames[2]
    for k in (1, 150, 199, 333):
        left, t = divmod(k, 200)
        expected = (1 - t / 200) * frames[left] + t / 200 * frames[left + 1]
        assert torch.allclose(out[k][1], expected, atol=1e-6)
    assert sum(n for n, _ in blend.calls) == 398  # every in-between frame once
