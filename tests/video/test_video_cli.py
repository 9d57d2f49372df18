"""`vfikit interpolate` end to end, in-process, on tiny generated videos and images."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from tests.video_helpers import decode_video, pattern_frames, smooth_frames, write_video

from vfikit.ops import warmup

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
MODEL = ("--model", "video_test_blend", "--device", "cpu")


def stream_summary(path: Path) -> dict[str, list]:
    with av.open(str(path)) as c:
        return {kind: [s.codec_context.codec.canonical_name for s in c.streams if s.type == kind]
                for kind in ("video", "audio", "subtitle")}  # fmt: skip


def audio_packets(path: Path) -> list[tuple[Fraction, bytes]]:
    with av.open(str(path)) as c:
        s = c.streams.audio[0]
        tb = Fraction(s.time_base)
        return [(p.pts * tb, bytes(p)) for p in c.demux(s) if p.size]


def test_factor_two_keeps_count_timestamps_and_audio(tmp_path, run, models):
    src = write_video(tmp_path / "in.mp4", pattern_frames(12), fps=25, audio=True)
    code, err = run(src, tmp_path / "out.mp4", *MODEL)
    assert code == 0, err
    times, _ = decode_video(tmp_path / "out.mp4")
    assert times == [Fraction(j, 50) for j in range(24)]
    assert stream_summary(tmp_path / "out.mp4")["audio"] == ["aac"]
    # audio is copied packet for packet, at the same times relative to the picture
    assert audio_packets(tmp_path / "out.mp4") == audio_packets(src)
    assert "12 source frames -> 24 output frames (11 interpolated, 13 copied)" in err
    assert not list(tmp_path.glob(".*"))  # no temporary files left


def test_ntsc_to_60_and_30_to_25_exact_timestamps(tmp_path, run, models):
    ntsc = write_video(tmp_path / "ntsc.mp4", pattern_frames(8), fps=Fraction(24000, 1001))
    assert run(ntsc, tmp_path / "60.mp4", *MODEL, "--fps", "60")[0] == 0
    times, _ = decode_video(tmp_path / "60.mp4")
    span = Fraction(8 * 1001, 24000)
    assert times == [Fraction(j, 60) for j in range(-(-span * 60 // 1))]
    thirty = write_video(tmp_path / "30.mp4", pattern_frames(12), fps=30)
    assert run(thirty, tmp_path / "25.mp4", *MODEL, "--fps", "25")[0] == 0
    times, _ = decode_video(tmp_path / "25.mp4")
    assert times == [Fraction(j, 25) for j in range(10)]
    with av.open(str(tmp_path / "25.mp4")) as c:
        assert c.streams.video[0].average_rate == 25


def test_variable_frame_rate_input_is_timed_by_timestamps(tmp_path, run, models):
    pts = [0, 2, 3, 6, 7, 8]  # in 1/30 s: gaps of 2, 1, 3, 1, 1 frames
    src = write_video(tmp_path / "vfr.mp4", pattern_frames(6), fps=30, pts=pts, time_base=Fraction(1, 30))
    assert run(src, tmp_path / "out.mp4", *MODEL, "--factor", "2")[0] == 0
    times, _ = decode_video(tmp_path / "out.mp4")
    expected = []
    for a, b in zip(pts, [*pts[1:], 9]):  # the last frame lasts one tick
        expected += [Fraction(a, 30) - 0, Fraction(a + b, 60)]
    assert times == expected


def test_slowmo_keeps_every_frame_at_the_input_rate(tmp_path, run, models):
    src = write_video(tmp_path / "in.mp4", pattern_frames(6), fps=25, audio=True)
    code, err = run(src, tmp_path / "slow.mp4", *MODEL, "--slowmo", "4")
    assert code == 0, err
    times, _ = decode_video(tmp_path / "slow.mp4")
    assert times == [Fraction(j, 25) for j in range(24)]
    assert stream_summary(tmp_path / "slow.mp4")["audio"] == []
    assert "cannot stay in sync" in err


def test_scene_cut_is_copied_not_blended(tmp_path, run, models):
    frames = pattern_frames(4, seed=1) + [255 - f for f in pattern_frames(4, seed=2)]
    src = write_video(tmp_path / "cut.nut", frames, codec="ffv1", pix_fmt="bgr0")  # lossless RGB
    out = tmp_path / "frames"
    code, err = run(src, out, *MODEL)
    assert code == 0, err
    written = sorted(out.glob("*.png"))
    assert len(written) == 16
    import cv2

    mid = cv2.imread(str(written[7]))[..., ::-1]  # between frame 3 (shot A) and frame 4 (shot B)
    assert np.array_equal(mid, frames[3])
    blended = cv2.imread(str(written[5]))[..., ::-1].astype(int)  # inside shot A: a real blend
    assert np.abs(blended - (frames[2].astype(int) + frames[3]) / 2).max() <= 1
    assert "1 scene cut" in err
    # with detection off the cut is morphed
    assert run(src, tmp_path / "morph", *MODEL, "--no-scene-detect")[0] == 0
    morph = cv2.imread(str(tmp_path / "morph" / written[7].name))[..., ::-1].astype(int)
    assert np.abs(morph - (frames[3].astype(int) + frames[4]) / 2).max() <= 1


def test_duplicate_frames_are_not_interpolated(tmp_path, run, models):
    frames = pattern_frames(3)
    frames = [frames[0], frames[1], frames[1], frames[1], frames[2]]
    src = write_video(tmp_path / "dup.nut", frames, codec="ffv1", pix_fmt="bgr0")
    code, err = run(src, tmp_path / "out.mp4", *MODEL)
    assert code == 0, err
    assert len(models) == 2  # only (0,1) and (1,2) go to the model
    assert "2 duplicate pair(s)" in err


def test_resume_after_a_kill_finishes_without_recomputing(tmp_path, run, models):
    src = write_video(tmp_path / "in.mp4", pattern_frames(16), fps=25, audio=True)
    # lossless, so the decoded frames must match exactly (x264's bits may differ between runs)
    SEG = ("--segment-frames", "6", "--crf", "0")
    reference = tmp_path / "ref.mp4"
    assert run(src, reference, *MODEL, *SEG)[0] == 0
    full_calls = len(models)
    models.clear()

    from tests.video_helpers import BlendNet

    out = tmp_path / "out.mp4"
    BlendNet.kill_after = 9  # Ctrl-C in the middle of the job
    code, err = run(src, out, *MODEL, *SEG)
    assert code == 130 and not out.exists()
    partial = tmp_path / ".out.mp4.vfikit-partial"
    assert (partial / "segment_000000.json").is_file()
    BlendNet.kill_after = None

    code, err = run(src, out, *MODEL, *SEG)
    assert code == 2 and "--resume" in err  # refuses to silently start over
    code, err = run(src, out, *MODEL, "--segment-frames", "8", "--crf", "0", "--resume")
    assert code == 2 and "different settings" in err
    models.clear()
    code, err = run(src, out, *MODEL, *SEG, "--resume", "--batch-size", "2")  # may change: not in the result
    assert code == 0, err
    assert "resuming" in err and 0 < len(models) < full_calls
    ref_times, ref_frames = decode_video(reference)
    times, frames = decode_video(out)
    assert times == ref_times
    diffs = [int(np.abs(a.astype(int) - b).max()) for a, b in zip(frames, ref_frames)]
    assert diffs == [0] * len(frames), diffs
    assert audio_packets(out) == audio_packets(src)
    assert not partial.exists()
    code, err = run(src, out, *MODEL, *SEG, "--resume")
    assert code == 0 and "already complete" in err


def test_frame_folder_resume_keeps_finished_frames(tmp_path, run, models):
    import cv2

    folder = tmp_path / "in"
    folder.mkdir()
    for i, f in enumerate(pattern_frames(6)):
        cv2.imwrite(str(folder / f"f{i}.png"), f[..., ::-1])
    from tests.video_helpers import BlendNet

    BlendNet.kill_after = 3
    assert run(folder, tmp_path / "out", *MODEL, "--factor", "3")[0] == 130
    BlendNet.kill_after = None
    partial = tmp_path / ".out.vfikit-partial"
    kept = {p.name: p.stat().st_mtime_ns for p in partial.glob("*.png")}
    assert kept
    code, err = run(folder, tmp_path / "out", *MODEL, "--factor", "3", "--resume")
    assert code == 0, err
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == [".vfikit-output.json"] + [f"{i:08d}.png" for i in range((6 - 1) * 3 + 1)]
    assert all((tmp_path / "out" / n).stat().st_mtime_ns == t for n, t in kept.items())  # not rewritten


def test_ten_bit_video_is_processed_without_truncation(tmp_path, run, models):
    rng = np.random.default_rng(3)
    fine = rng.integers(0, 4, size=(48, 64, 3))  # detail below 8-bit precision
    frames = [((f.astype(np.int64) * 4 + fine) * 64).astype(np.uint16) for f in pattern_frames(3)]  # 10-bit codes
    src = write_video(tmp_path / "ten.mkv", frames, codec="ffv1", pix_fmt="gbrp10le")
    code, err = run(src, tmp_path / "out.mkv", *MODEL, "--codec", "ffv1")
    assert code == 0, err
    with av.open(str(tmp_path / "out.mkv")) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "gbrp10le"  # depth kept by default
    _, src_frames = decode_video(src, "rgb48le")
    _, out_frames = decode_video(tmp_path / "out.mkv", "rgb48le")
    assert len(out_frames) == 6
    assert np.array_equal(out_frames[0], src_frames[0]) and np.array_equal(out_frames[2], src_frames[1])
    mid = out_frames[1].astype(np.int64)
    expected = (src_frames[0].astype(np.int64) + src_frames[1]) / 2
    assert np.abs(mid - expected).max() <= 65535 / 1023  # one 10-bit step; an 8-bit path is off by up to 2
    assert (np.round(mid * 1023 / 65535) % 4 != 0).mean() > 0.5  # codes an 8-bit path cannot produce
    # x264 gets a 10-bit format too instead of a silent 8-bit one
    assert run(src, tmp_path / "out.mp4", *MODEL)[0] == 0
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert c.streams.video[0].codec_context.pix_fmt.endswith("10le")


def test_image_pair_middle_frame_and_factor(tmp_path, run, models):
    import cv2

    a, b = pattern_frames(2, step=2)
    cv2.imwrite(str(tmp_path / "a.png"), a[..., ::-1])
    cv2.imwrite(str(tmp_path / "b.png"), b[..., ::-1])
    code, err = run(tmp_path / "a.png", tmp_path / "b.png", tmp_path / "mid.png", *MODEL)
    assert code == 0, err
    mid = cv2.imread(str(tmp_path / "mid.png"))[..., ::-1].astype(int)
    assert np.abs(mid - (a.astype(int) + b) / 2).max() <= 0.5
    assert run(tmp_path / "a.png", tmp_path / "b.png", tmp_path / "four", *MODEL, "--factor", "4")[0] == 0
    assert len(list((tmp_path / "four").glob("*.png"))) == 5
    code, err = run(tmp_path / "a.png", tmp_path / "b.png", tmp_path / "x.png", *MODEL, "--factor", "4")
    assert code == 2 and "output folder" in err


def test_frame_folder_to_folder_and_to_video(tmp_path, run, models):
    import cv2

    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(pattern_frames(5)):
        cv2.imwrite(str(folder / f"frame{i + 8}.png"), f[..., ::-1])  # natural order: 8, 9, 10, ...
    assert run(folder, tmp_path / "out", *MODEL, "--factor", "2")[0] == 0
    out = sorted((tmp_path / "out").glob("*.png"))
    assert len(out) == 9
    first = cv2.imread(str(out[2]))
    assert np.array_equal(first, cv2.imread(str(folder / "frame9.png")))
    code, err = run(folder, tmp_path / "v.mp4", *MODEL)
    assert code == 2 and "--input-fps" in err
    assert run(folder, tmp_path / "v.mp4", *MODEL, "--input-fps", "24", "--fps", "60")[0] == 0
    times, _ = decode_video(tmp_path / "v.mp4")
    assert times == [Fraction(j, 60) for j in range(11)]  # images are instants: up to the last one at 4/24 s


def test_gray_rgba_and_16_bit_images(tmp_path, run, models):
    import cv2

    a, b = pattern_frames(2)
    gray = tmp_path / "gray"
    gray.mkdir()
    cv2.imwrite(str(gray / "0.png"), a[..., 0])
    cv2.imwrite(str(gray / "1.png"), b[..., 0])
    code, err = run(gray, tmp_path / "g", *MODEL)
    assert code == 0 and "converted to RGB" in err
    rgba = tmp_path / "rgba"
    rgba.mkdir()
    for i, f in enumerate((a, b)):
        cv2.imwrite(str(rgba / f"{i}.png"), np.dstack([f[..., ::-1], np.full(f.shape[:2], 255, np.uint8)]))
    code, err = run(rgba, tmp_path / "r", *MODEL)
    assert code == 2 and "alpha" in err and "--drop-alpha" in err and not (tmp_path / "r").exists()
    assert run(rgba, tmp_path / "r", *MODEL, "--drop-alpha")[0] == 0
    deep = tmp_path / "deep"
    deep.mkdir()
    rng = np.random.default_rng(0)
    frames16 = [rng.integers(0, 65536, size=(48, 64, 3)).astype(np.uint16) for _ in range(2)]
    for i, f in enumerate(frames16):
        cv2.imwrite(str(deep / f"{i}.png"), f)
    assert run(deep, tmp_path / "d", *MODEL)[0] == 0
    back = cv2.imread(str(tmp_path / "d" / "00000000.png"), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16 and np.array_equal(back, frames16[0])
    code, err = run(deep, tmp_path / "j", *MODEL, "--ext", "jpg")
    assert code == 2 and "16 bits" in err and not (tmp_path / "j").exists()


@pytest.mark.parametrize("suffix", [".jpg", ".bmp", ".webp"])
def test_16_bit_pair_to_an_8_bit_image_format_is_refused(tmp_path, run, models, suffix):
    """A 16-bit PNG pair written to mid.jpg gave an all-white image with exit 0 (issue 25, defect 2):
    single images refuse 8-bit formats for deeper input, as folders of frames do."""
    import cv2

    rng = np.random.default_rng(1)
    pair = []
    for i in range(2):
        path = tmp_path / f"{i}.png"
        cv2.imwrite(str(path), rng.integers(0, 65536, size=(48, 64, 3)).astype(np.uint16))
        pair.append(path)
    code, err = run(*pair, tmp_path / f"mid{suffix}", *MODEL)
    assert code == 2 and "16 bits" in err and ".png" in err, err
    assert not (tmp_path / f"mid{suffix}").exists() and not list(tmp_path.glob(".*"))
    assert run(*pair, tmp_path / "mid.png", *MODEL)[0] == 0
    assert cv2.imread(str(tmp_path / "mid.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint16


def test_image_writer_never_saturates_16_bit_frames_into_8_bits(tmp_path):
    from vfikit.errors import VfikitError
    from vfikit.video.threads import write_array_image

    deep = np.full((8, 8, 3), 1000, np.uint16)  # about 1.5% grey: saturated to 8 bits it would be white
    with pytest.raises(VfikitError, match="16 bits"):
        write_array_image(tmp_path / "x.jpg", deep)
    assert not list(tmp_path.iterdir())
    write_array_image(tmp_path / "x.tif", deep)
    write_array_image(tmp_path / "y.jpg", (deep // 257).astype(np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.tif", "y.jpg"]


def test_folder_of_videos_and_torchrun_sharding(tmp_path, run, models, monkeypatch):
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("a", "b", "c"):
        write_video(videos / f"{name}.mp4", pattern_frames(3), fps=25)
    code, err = run(videos, tmp_path / "out", *MODEL, "--ext", ".mkv")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.mkv", "b.mkv", "c.mkv"]
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    code, err = run(videos, tmp_path / "sharded", *MODEL)
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "sharded").iterdir()) == ["b.mp4"]  # rank 1 of 2: every 2nd from 1
    code, err = run(videos, tmp_path / "out", *MODEL, "--ext", ".mkv")
    assert code == 2 and "already exist" in err


def test_start_duration_and_max_frames(tmp_path, run, models):
    src = write_video(tmp_path / "in.mp4", pattern_frames(20), fps=25, audio=True)
    code, err = run(src, tmp_path / "part.mp4", *MODEL, "--start", "0.2", "--duration", "0.2")
    assert code == 0, err
    times, _ = decode_video(tmp_path / "part.mp4")
    assert times == [Fraction(j, 50) for j in range(10)]  # 5 source frames, starting at 0
    audio = audio_packets(tmp_path / "part.mp4")
    packet = Fraction(1024, 48000)
    assert audio[0][0] + packet <= 0  # one packet before the window, for the decoder to warm up
    assert audio[1][0] <= 0 < audio[1][0] + packet and audio[-1][0] < Fraction(2, 10)
    # a duration that is no multiple of the frame interval: frames starting inside it, each whole
    assert run(src, tmp_path / "odd.mp4", *MODEL, "--start", "0.01", "--duration", "0.123")[0] == 0
    assert decode_video(tmp_path / "odd.mp4")[0] == [Fraction(j, 50) for j in range(6)]
    assert run(src, tmp_path / "few.mp4", *MODEL, "--max-frames", "4")[0] == 0
    assert len(decode_video(tmp_path / "few.mp4")[0]) == 8


def test_subtitles_are_carried_or_refused(tmp_path, run, models):
    src = tmp_path / "subs.mkv"
    container = av.open(str(src), "w")
    v = container.add_stream("ffv1", rate=25)
    v.width, v.height, v.pix_fmt = 64, 48, "bgr0"
    s = container.add_mux_stream("subrip")
    s.time_base = Fraction(1, 1000)
    for i, f in enumerate(pattern_frames(4)):
        frame = av.VideoFrame.from_ndarray(f, format="rgb24")
        frame.pts = i
        for p in v.encode(frame):
            container.mux(p)
    for p in v.encode():
        container.mux(p)
    packet = av.Packet(b"Hello")
    packet.pts = packet.dts = 40
    packet.duration = 100
    packet.time_base = Fraction(1, 1000)
    packet.stream = s
    container.mux(packet)
    container.close()
    assert run(src, tmp_path / "out.mkv", *MODEL)[0] == 0
    with av.open(str(tmp_path / "out.mkv")) as c:
        subs = [(bytes(p), p.pts) for p in c.demux(c.streams.subtitles[0]) if p.size]
    assert subs == [(b"Hello", 40)]
    code, err = run(src, tmp_path / "out.mp4", *MODEL)
    assert code == 2 and "--no-subtitles" in err and not (tmp_path / "out.mp4").exists()
    assert run(src, tmp_path / "out.mp4", *MODEL, "--no-subtitles")[0] == 0


def test_audio_is_reencoded_only_when_the_container_needs_it(tmp_path, run, models):
    src = write_video(tmp_path / "in.mp4", pattern_frames(6), fps=25, audio=True)
    code, err = run(src, tmp_path / "out.webm", *MODEL, "--crf", "40")
    assert code == 0, err
    assert stream_summary(tmp_path / "out.webm") == {"video": ["vp9"], "audio": ["opus"], "subtitle": []}
    assert "re-encoded to libopus" in err


@pytest.mark.skipif(not (SHARED / "data/clips/davis_car_turn/car-turn.mp4").is_file(),
                    reason="../shared/data/clips/davis_car_turn/car-turn.mp4 is not available")  # fmt: skip
def test_real_clip_end_to_end(tmp_path, run, models):
    clip = SHARED / "data/clips/davis_car_turn/car-turn.mp4"
    before = clip.stat().st_mtime_ns
    out = tmp_path / "car-2x.mp4"
    code, err = run(clip, out, *MODEL, "--max-frames", "6", "--batch-size", "2")
    assert code == 0, err
    with av.open(str(clip)) as c:
        rate = c.streams.video[0].average_rate
        w, h = c.streams.video[0].width, c.streams.video[0].height
    times, frames = decode_video(out)
    assert times == [Fraction(j) / (2 * rate) for j in range(12)]
    assert frames[0].shape == (h, w, 3)
    assert "0 scene cuts" in err and clip.stat().st_mtime_ns == before


def test_rotation_and_colour_tags_are_kept(tmp_path, run, models):
    src = tmp_path / "phone.mp4"
    container = av.open(str(src), "w")
    v = container.add_stream("libx264", rate=25)
    v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
    v.options = {"crf": "0", "preset": "ultrafast"}
    ctx = v.codec_context
    ctx.colorspace, ctx.color_primaries, ctx.color_trc, ctx.color_range = 1, 1, 1, 1  # BT.709, limited range
    v.set_display_rotation(90)
    frames = smooth_frames(4)
    for i, f in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="yuv420p", dst_colorspace=1)
        frame.pts = i
        for p in v.encode(frame):
            container.mux(p)
    for p in v.encode():
        container.mux(p)
    container.close()
    code, err = run(src, tmp_path / "out.mp4", *MODEL, "--crf", "0")
    assert code == 0, err
    with av.open(str(tmp_path / "out.mp4")) as c:
        ctx = c.streams.video[0].codec_context
        assert (int(ctx.colorspace), int(ctx.color_primaries), int(ctx.color_trc)) == (1, 1, 1)
        first = next(c.decode(video=0))
        assert first.rotation == 90
    _, src_frames = decode_video(src)
    _, out_frames = decode_video(tmp_path / "out.mp4")
    _, misread = decode_video(tmp_path / "out.mp4", src_colorspace="ITU601")
    # a copied frame comes back (almost) unchanged; had the BT.709 tags been ignored it would not
    error = np.abs(out_frames[2].astype(int) - src_frames[1]).mean()
    assert error < 1.5 and np.abs(misread[2].astype(int) - src_frames[1]).mean() > 3 * error


def test_batch_continues_after_a_bad_video(tmp_path, run, models):
    videos = tmp_path / "videos"
    videos.mkdir()
    write_video(videos / "a.mp4", pattern_frames(3))
    (videos / "b.mp4").write_bytes(b"broken" * 100)
    write_video(videos / "c.mp4", pattern_frames(3))
    code, err = run(videos, tmp_path / "out", *MODEL)
    assert code == 2 and "1 of 3 video(s) failed: b.mp4" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.mp4", "c.mp4"]
    code, err = run(videos, tmp_path / "out", *MODEL, "--resume", "--quiet")
    assert code == 2 and "already complete" not in err and "failed: b.mp4" in err  # --quiet: only the error


def test_python_api_returns_results(tmp_path, models):
    import vfikit

    src = write_video(tmp_path / "in.mp4", pattern_frames(5))
    result = vfikit.interpolate_video(src, tmp_path / "o.mp4", model="video_test_blend", factor=3, progress=False)
    assert result.output == tmp_path / "o.mp4" and result.stats.output_frames == 15
    assert result.stats.interpolated == 8 and len(models) == 8


def test_midpoint_only_model_shares_bisection_and_uses_nearest_reachable_time(tmp_path, run, models):
    frames = pattern_frames(3)
    src = write_video(tmp_path / "in.nut", frames, codec="ffv1", pix_fmt="bgr0", fps=30)
    code, err = run(src, tmp_path / "four", "--model", "video_test_mid", "--factor", "4", "--no-scene-detect")
    assert code == 0, err
    assert len(models) == 2 * 3  # per pair: 1/2, then 1/4 and 3/4 from it; never the midpoint twice
    assert {t for _, t in models} == {0.5}
    import cv2

    quarter = cv2.imread(str(tmp_path / "four" / "00000001.png"))[..., ::-1].astype(float)
    assert np.abs(quarter - (0.75 * frames[0] + 0.25 * frames[1])).max() <= 1
    # 30 -> 25 fps: the frame at 1/25 s lies at t = 1/5 between source frames 1 and 2; with
    # --bisect-depth 2 the nearest reachable time is 1/4
    models.clear()
    code, err = run(src, tmp_path / "25", "--model", "video_test_mid", "--fps", "25", "--bisect-depth", "2",
                    "--no-scene-detect")  # fmt: skip
    assert code == 0, err
    second = cv2.imread(str(tmp_path / "25" / "00000001.png"))[..., ::-1].astype(float)
    assert np.abs(second - (0.75 * frames[1] + 0.25 * frames[2])).max() <= 1


def test_variable_frame_rate_to_constant_rate(tmp_path, run, models):
    pts = [0, 2, 3, 6, 7, 8]  # 1/30 s ticks
    src = write_video(tmp_path / "vfr.mp4", pattern_frames(6), fps=30, pts=pts, time_base=Fraction(1, 30))
    assert run(src, tmp_path / "cfr.mp4", *MODEL, "--fps", "30")[0] == 0
    times, _ = decode_video(tmp_path / "cfr.mp4")
    assert times == [Fraction(j, 30) for j in range(9)]  # the gaps are filled, by timestamps


def test_image_pair_into_a_new_folder(tmp_path, run, models):
    import cv2

    a, b = pattern_frames(2)
    cv2.imwrite(str(tmp_path / "a.png"), a)
    cv2.imwrite(str(tmp_path / "b.png"), b)
    code, err = run(tmp_path / "a.png", tmp_path / "b.png", tmp_path / "new" / "deeper" / "mid.png", *MODEL)
    assert code == 0, err
    assert (tmp_path / "new" / "deeper" / "mid.png").is_file()


@pytest.mark.parametrize("flags,precision", [((), "auto"), (("--fp32",), "fp32"), (("--bf16",), "bf16"),
                                             (("--precision", "bf16"), "bf16")])
def test_precision_flags_reach_the_options(tmp_path, monkeypatch, flags, precision):
    import vfikit.video.api as api
    from vfikit.cli import main

    seen = {}
    monkeypatch.setattr(api, "interpolate_video", lambda source, output, options: seen.update(o=options))
    monkeypatch.setattr(warmup, "start_background_compile", lambda precision: seen.update(helper=precision))
    assert main(["interpolate", str(tmp_path / "in.mp4"), str(tmp_path / "out.mp4"), *flags]) == 0
    assert seen["o"].precision == precision and seen["helper"] == precision


def test_the_compile_helper_starts_for_the_default_on_cpu_and_is_released_on_errors(tmp_path, monkeypatch,
                                                                                   capsys):
    import vfikit.video.api as api
    from vfikit.cli import main
    from vfikit.errors import VfikitError

    calls = []

    def start(precision: str) -> bool:
        calls.append(("start", precision))
        return True

    monkeypatch.setattr(warmup, "start_background_compile", start)
    monkeypatch.setattr(warmup, "choose_synthesis_heads", lambda bf16: calls.append(("tell", bf16)))

    def refuse(source, output, options):
        raise VfikitError("not a video")

    monkeypatch.setattr(api, "interpolate_video", refuse)
    paths = [str(tmp_path / "in.mp4"), str(tmp_path / "out.mp4")]
    for extra, started in (((), True), (("--fp32",), True), (("--device", "cpu"), True), (MODEL, False),
                           (("--weights", "w.vfikit"), False), (("--device", "cuda"), False),
                           (("--backend", "onnx"), False)):
        calls.clear()
        assert main(["interpolate", *paths, *extra]) == 2
        start = [("start", "fp32" if "--fp32" in extra else "auto")] if started else []
        assert calls == [*start, ("tell", None)], extra  # a helper the job never told stops
        assert ("compile once" in capsys.readouterr().err) == started  # the user is told why the run is slower
    assert main(["interpolate", *paths, "--quiet"]) == 2
    assert "compile once" not in capsys.readouterr().err


def test_fp32_and_bf16_flags_exclude_each_other(tmp_path, capsys):
    from vfikit.cli import main

    with pytest.raises(SystemExit) as exc:  # argparse's own usage error
        main(["interpolate", str(tmp_path / "in.mp4"), str(tmp_path / "out.mp4"), "--fp32", "--bf16"])
    assert exc.value.code == 2 and "not allowed with" in capsys.readouterr().err
