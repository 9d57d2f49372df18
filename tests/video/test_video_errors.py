"""Bad input gets a clear error (exit 2), and nothing is lost: no output, inputs untouched."""

from __future__ import annotations

import errno
import hashlib
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from video_helpers import pattern_frames, write_video

from vfikit.errors import VfikitError
from vfikit.video.encode import EncodeOptions, parse_bitrate, resolve_encoding
from vfikit.video.sources import ColorInfo

MODEL = ("--model", "video_test_blend", "--device", "cpu")


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def expect_error(run, tmp_path, *args, match: str) -> str:
    before = digest(tmp_path)
    code, err = run(*args)
    assert code == 2, err
    assert match in err, err
    assert "Traceback" not in err
    assert digest(tmp_path) == before  # nothing written, nothing changed
    return err


def test_unreadable_and_corrupt_files(tmp_path, run, models):
    (tmp_path / "junk.mp4").write_bytes(b"this is not a video" * 50)
    expect_error(run, tmp_path, tmp_path / "junk.mp4", tmp_path / "o.mp4", *MODEL, match="cannot read")
    good = write_video(tmp_path / "good.mp4", pattern_frames(6))
    (tmp_path / "cut.mp4").write_bytes(good.read_bytes()[: good.stat().st_size // 2])  # truncated download
    err = expect_error(run, tmp_path, tmp_path / "cut.mp4", tmp_path / "o.mp4", *MODEL, match="cut.mp4")
    assert "error" in err
    expect_error(run, tmp_path, tmp_path / "missing.mp4", tmp_path / "o.mp4", *MODEL, match="not found")


def test_truncated_video_is_refused_unless_allowed(tmp_path, run, models):
    """A cut-off download whose index survived (faststart) decoded to a short output with exit 0."""
    import json

    full = write_video(tmp_path / "full.mp4", pattern_frames(50), container_options={"movflags": "faststart"})
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    for out in (tmp_path / "o.mp4", tmp_path / "frames"):
        err = expect_error(run, tmp_path, cut, out, *MODEL, "--segment-frames", "4", match="cut.mp4 is truncated")
        assert "2.00s" in err and "--allow-truncated" in err
    code, err = run(cut, tmp_path / "o.mp4", *MODEL, "--allow-truncated")
    assert code == 0 and "cut.mp4 is truncated" in err
    with av.open(str(tmp_path / "o.mp4")) as c:
        assert "cut.mp4 is truncated" in c.metadata.get("comment", "")
        assert 0 < c.streams.video[0].frames < 60  # what was there, interpolated
    assert run(cut, tmp_path / "frames", *MODEL, "--allow-truncated")[0] == 0
    manifest = json.loads((tmp_path / "frames" / ".vfikit-output.json").read_text())
    assert "cut.mp4 is truncated" in manifest["truncated"]
    code, err = run(full, tmp_path / "whole.mp4", *MODEL)  # the complete file: no complaint
    assert code == 0 and "is truncated" not in err
    with av.open(str(tmp_path / "whole.mp4")) as c:
        assert c.streams.video[0].frames == 100 and "comment" not in c.metadata


def test_truncated_matroska_with_audio_is_refused(tmp_path, run, models):
    """Matroska states no stream duration; with audio the container's length is not the video's, so a
    cut-off file was written short with exit 0 (issue 25, defect 1). The video's DURATION tag tells."""
    suffix = ".mkv"
    full = write_video(tmp_path / f"full{suffix}", pattern_frames(50), audio=True)
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    err = expect_error(run, tmp_path, cut, tmp_path / "o.mp4", *MODEL, match=f"cut{suffix} is truncated")
    assert "2.00s" in err and "--allow-truncated" in err
    code, err = run(cut, tmp_path / "o.mp4", *MODEL, "--allow-truncated")
    assert code == 0 and f"cut{suffix} is truncated" in err
    code, err = run(full, tmp_path / "whole.mp4", *MODEL)
    assert code == 0 and "is truncated" not in err
    with av.open(str(tmp_path / "whole.mp4")) as c:
        assert c.streams.video[0].frames == 100


def test_truncated_webm_clip_from_the_shared_data_is_refused(tmp_path, run, models):
    """The case of issue 25: half of a real WebM with Opus audio gave 72 of 188 frames and exit 0."""
    clip = Path(__file__).resolve().parents[3] / "shared/data/clips/mdn_stream_of_water/stream-of-water.webm"
    if not clip.is_file():
        pytest.skip(f"needs the shared clip {clip}")
    cut = tmp_path / "cut.webm"
    cut.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    err = expect_error(run, tmp_path, cut, tmp_path / "o.mp4", *MODEL, match="cut.webm is truncated")
    assert "states 3.00s" in err


def test_truncation_is_found_by_frame_count_when_no_duration_is_stated(tmp_path):
    from dataclasses import replace

    from vfikit.video.sources import TruncatedVideoError, VideoReader, probe_video

    full = write_video(tmp_path / "full.mp4", pattern_frames(50), container_options={"movflags": "faststart"})
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    info = replace(probe_video(cut), video_duration=None)  # as for a file that states only its frame count
    with pytest.raises(TruncatedVideoError, match=r"\d+ of the 50 frames the file lists"):
        list(VideoReader(info))
    assert len(list(VideoReader(info, max_frames=5))) == 5  # a part that is there is fine
    whole = replace(probe_video(full), video_duration=None)
    assert len(list(VideoReader(whole))) == 50


def test_no_video_stream(tmp_path, run, models):
    path = tmp_path / "sound.m4a"
    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=48000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 48000, 0
        for p in [*s.encode(frame), *s.encode()]:
            c.mux(p)
    expect_error(run, tmp_path, path, tmp_path / "o.mp4", *MODEL, match="no video stream (audio)")


def test_a_single_frame(tmp_path, run, models):
    src = write_video(tmp_path / "one.mp4", pattern_frames(1))
    err = expect_error(run, tmp_path, src, tmp_path / "o.mp4", *MODEL, match="at least two frames, got 1")
    assert "%|" not in err and "frame/s" not in err  # no progress bar before the error
    img = tmp_path / "one"
    img.mkdir()
    import cv2

    cv2.imwrite(str(img / "0.png"), pattern_frames(1)[0])
    expect_error(run, tmp_path, img, tmp_path / "o", *MODEL, match="at least two frames, got 1")
    two = write_video(tmp_path / "two.mp4", pattern_frames(2))
    err = expect_error(run, tmp_path, two, tmp_path / "o.mp4", *MODEL, "--max-frames", "1", match="at least two")
    assert "frame/s" not in err
    expect_error(run, tmp_path, img / "0.png", tmp_path / "o.png", *MODEL, match="single image")


def test_start_beyond_the_end_says_so(tmp_path, run, models):
    src = write_video(tmp_path / "in.mp4", pattern_frames(5))  # 0.2 s
    err = expect_error(run, tmp_path, src, tmp_path / "o.mp4", *MODEL, "--start", "3",
                       match="--start 3s lies beyond the end of in.mp4 (it lasts 0.20s)")
    assert "got 0 frames" not in err


def test_progress_bar_updates_rarely_when_stderr_is_a_log(monkeypatch):
    import io
    import sys

    from vfikit.video.threads import LOG_INTERVAL, progress_bar

    log = io.StringIO()  # not a terminal
    monkeypatch.setattr(sys, "stderr", log)
    bar = progress_bar(1000, "clip", True)
    assert bar.mininterval == LOG_INTERVAL >= 30
    for _ in range(1000):
        bar.update(1)
    bar.close()
    assert log.getvalue().count("\r") + log.getvalue().count("\n") <= 3  # start, end: not one per update
    monkeypatch.setattr(log, "isatty", lambda: True, raising=False)
    assert progress_bar(10, "clip", True).mininterval < 1  # a terminal keeps a live bar


def test_frames_of_different_sizes(tmp_path, run, models):
    import cv2

    folder = tmp_path / "frames"
    folder.mkdir()
    cv2.imwrite(str(folder / "0.png"), pattern_frames(1)[0])
    cv2.imwrite(str(folder / "1.png"), pattern_frames(1, width=32, height=32)[0])
    expect_error(run, tmp_path, folder, tmp_path / "o", *MODEL, match="1.png is 32x32 but 0.png is 64x48")


def test_frames_smaller_than_the_model_needs(tmp_path, run, models):
    src = write_video(tmp_path / "in.mp4", pattern_frames(3))
    expect_error(run, tmp_path, src, tmp_path / "o.mp4", "--model", "video_test_big", match="at least 128x128")


def test_unknown_model_and_missing_weights(tmp_path, run, models):
    src = write_video(tmp_path / "in.mp4", pattern_frames(3))
    expect_error(run, tmp_path, src, tmp_path / "o.mp4", "--model", "video_test_blendd", match="did you mean")
    expect_error(run, tmp_path, src, tmp_path / "o.mp4", *MODEL, "--weights", tmp_path / "nope.pth", match="not found")


def test_weights_without_model_name_their_model_or_are_refused(tmp_path, run, models):
    from vfikit.hub import create_model, save_vfikit

    src = write_video(tmp_path / "in.mp4", pattern_frames(3))
    out = tmp_path / "o.mp4"
    (tmp_path / "text.pth").write_text("not weights at all\n")
    (tmp_path / "random.bin").write_bytes(np.random.default_rng(0).bytes(4096))
    for name in ("text.pth", "random.bin"):
        expect_error(run, tmp_path, src, out, "--weights", tmp_path / name, "--device", "cpu",
                     match=f"cannot tell which model {tmp_path / name} is for")
    err = expect_error(run, tmp_path, src, out, "--weights", tmp_path / "nope.vfikit", match="weights file not found")
    assert "Errno" not in err
    save_vfikit(create_model("video_test_mid"), tmp_path / "mid.vfikit")
    assert run(src, out, "--weights", tmp_path / "mid.vfikit", "--device", "cpu")[0] == 0
    assert models and {t for _, t in models} == {0.5}  # the file's model ran (MidNet: t = 0.5 only)


def test_untrained_network_is_refused_unless_allowed(tmp_path, run, models):
    src = write_video(tmp_path / "in.mp4", pattern_frames(3))
    for name in ("sepconv", "cdfi"):
        err = expect_error(run, tmp_path, src, tmp_path / "o.mp4", "--model", name, "--device", "cpu",
                           match=f"{name} has no trained weights")
        assert "--weights" in err and "--allow-untrained" in err
    out = tmp_path / "o.mp4"
    args = ("--model", "compressed_adacof_k5_d1", "--device", "cpu", "--max-frames", "2", "--allow-untrained")
    assert run(src, out, *args)[0] == 0 and out.is_file()


def test_output_exists_needs_force_and_is_replaced_only_when_complete(tmp_path, run, models):
    src = write_video(tmp_path / "in.mp4", pattern_frames(4))
    out = tmp_path / "out.mp4"
    out.write_bytes(b"precious")
    expect_error(run, tmp_path, src, out, *MODEL, match="already exists")
    from video_helpers import BlendNet

    BlendNet.kill_after = 1
    assert run(src, out, *MODEL, "--force")[0] == 130
    assert out.read_bytes() == b"precious"  # a killed --force run leaves the old output alone
    BlendNet.kill_after = None
    assert run(src, out, *MODEL, "--force")[0] == 0
    assert out.read_bytes() != b"precious"


def test_force_never_replaces_an_unrelated_folder(tmp_path, run, models):
    src = write_video(tmp_path / "in.mp4", pattern_frames(3))
    mine = tmp_path / "documents"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    expect_error(run, tmp_path, src, mine, *MODEL, "--force", match="will not be replaced")
    import cv2

    photos = tmp_path / "photos"  # only images, but not written by vfikit: --force deleted them
    photos.mkdir()
    for i, frame in enumerate(pattern_frames(2)):
        cv2.imwrite(str(photos / f"IMG_{i:04d}.jpg"), frame)
    expect_error(run, tmp_path, src, photos, *MODEL, "--force", match="vfikit did not write")
    assert run(src, tmp_path / "frames", *MODEL)[0] == 0  # an earlier frame output may be replaced
    assert (tmp_path / "frames" / ".vfikit-output.json").is_file()
    assert run(src, tmp_path / "frames", *MODEL, "--force", "--factor", "3")[0] == 0
    assert len(list((tmp_path / "frames").glob("*.png"))) == 9
    batch = tmp_path / "videos"
    batch.mkdir()
    write_video(batch / "clip.mp4", pattern_frames(3))
    (tmp_path / "batch_out" / "clip").mkdir(parents=True)  # a folder of a batch output, not ours
    (tmp_path / "batch_out" / "clip" / "keep.png").write_bytes(b"mine")
    expect_error(run, tmp_path, batch, tmp_path / "batch_out", *MODEL, "--force", "--ext", ".png",
                 match="vfikit did not write")


def test_force_keeps_files_the_user_added_to_a_frame_folder(tmp_path, run, models):
    """Issue 25, defect 5: after `interpolate seq out/frames`, a photo copied into out/frames and a subfolder
    added there were deleted by the same command with --force --factor 3. The marker now lists what vfikit
    wrote, and --force removes only that."""
    import json

    import cv2

    seq = tmp_path / "seq"
    seq.mkdir()
    for i, frame in enumerate(pattern_frames(3)):
        cv2.imwrite(str(seq / f"{i}.png"), frame)
    out = tmp_path / "out" / "frames"
    assert run(seq, out, *MODEL, "--factor", "4")[0] == 0  # 9 frames
    manifest = json.loads((out / ".vfikit-output.json").read_text())
    assert manifest["files"] == [f"{i:08d}.png" for i in range(9)]
    (out / "photo.jpg").write_bytes(b"a photo")
    (out / "mine").mkdir()
    (out / "mine" / "notes.txt").write_text("notes")
    code, err = run(seq, out, *MODEL, "--force", "--factor", "3")  # 7 frames: 00000007/8.png are stale
    assert code == 0, err
    assert (out / "photo.jpg").read_bytes() == b"a photo" and (out / "mine" / "notes.txt").read_text() == "notes"
    names = sorted(p.name for p in out.iterdir())
    assert names == [".vfikit-output.json"] + [f"{i:08d}.png" for i in range(7)] + ["mine", "photo.jpg"]
    assert json.loads((out / ".vfikit-output.json").read_text())["files"] == [f"{i:08d}.png" for i in range(7)]
    assert "kept" in err and "photo.jpg" in err
    assert sorted(p.name for p in out.parent.iterdir()) == ["frames"]  # no temporary folder left behind
    # a file of the user's named like a frame would be overwritten: refused before any work
    (out / "00000009.png").write_bytes(b"my own frame")
    expect_error(run, tmp_path, seq, out, *MODEL, "--force", "--factor", "5", match="00000009.png")


def test_force_keeps_user_files_of_a_frame_folder_written_before_the_marker_listed_files(tmp_path, run, models):
    """Older markers hold no file list: vfikit's files are then its numbered frames, nothing else."""
    import json

    src = write_video(tmp_path / "in.mp4", pattern_frames(3))
    out = tmp_path / "frames"
    assert run(src, out, *MODEL)[0] == 0
    marker = out / ".vfikit-output.json"
    record = json.loads(marker.read_text())
    del record["files"]
    marker.write_text(json.dumps(record))
    (out / "photo.jpg").write_bytes(b"a photo")
    assert run(src, out, *MODEL, "--force", "--factor", "3")[0] == 0
    assert (out / "photo.jpg").read_bytes() == b"a photo" and len(list(out.glob("0*.png"))) == 9


def test_output_equal_to_or_inside_input(tmp_path, run, models):
    src = write_video(tmp_path / "in.mp4", pattern_frames(3))
    expect_error(run, tmp_path, src, src, *MODEL, "--force", match="choose another path")
    import cv2

    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(pattern_frames(2)):
        cv2.imwrite(str(folder / f"{i}.png"), f)
    expect_error(run, tmp_path, folder, folder / "out", *MODEL, match="choose another path")
    expect_error(run, tmp_path, src, tmp_path, *MODEL, "--force", match="choose another path")


def test_missing_write_permission(tmp_path, run, models, monkeypatch):
    src = write_video(tmp_path / "in.mp4", pattern_frames(3))
    locked = tmp_path / "locked"
    locked.mkdir()
    import os

    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == locked else real_access(p, mode))
    expect_error(run, tmp_path, src, locked / "o.mp4", *MODEL, match=f"no permission to write into {locked}")
    (tmp_path / "file").write_text("x")
    expect_error(run, tmp_path, src, tmp_path / "file" / "o.mp4", *MODEL, match="is not a folder")


def test_disk_full_keeps_finished_work_and_no_output(tmp_path, run, models, monkeypatch):
    src = write_video(tmp_path / "in.mp4", pattern_frames(12))
    from vfikit.video.encode import SegmentWriter

    real_write = SegmentWriter.write
    written = []

    def fill_up(self, ticks, duration, frame):
        if len(written) == 9:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(ticks)
        real_write(self, ticks, duration, frame)

    monkeypatch.setattr(SegmentWriter, "write", fill_up)
    out = tmp_path / "out.mp4"
    code, err = run(src, out, *MODEL, "--segment-frames", "4")
    assert code == 2 and "disk full" in err and "--resume" in err
    assert not out.exists() and not (tmp_path / ".out.vfikit-tmp.mp4").exists()
    partial = tmp_path / ".out.mp4.vfikit-partial"
    assert sorted(p.name for p in partial.glob("segment_*.json")) == ["segment_000000.json", "segment_000001.json"]
    monkeypatch.setattr(SegmentWriter, "write", real_write)
    assert run(src, out, *MODEL, "--segment-frames", "4", "--resume")[0] == 0


@pytest.fixture
def small_disk(tmp_path):
    """A real 256 KB file system (tmpfs) to fill up; skipped where it cannot be mounted (needs root)."""
    import os
    import shutil
    import subprocess

    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a real full disk needs a small tmpfs, which only root can mount")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_real_full_disk_is_exit_status_2_with_the_disk_full_message(tmp_path, run, models, small_disk):
    """Issue 25: a full disk ended with exit status 1 and libpng's or a raw OSError's words (docs: 2)."""
    import os

    import cv2

    src = write_video(tmp_path / "in.mp4", pattern_frames(12, 320, 240))
    code, err = run(src, small_disk / "frames", *MODEL)  # PNG frames: the disk fills up after a few
    assert code == 2 and "disk full" in err and "--resume" in err, err
    assert not (small_disk / "frames").exists()
    for i, frame in enumerate(pattern_frames(2, 320, 240)):
        cv2.imwrite(str(tmp_path / f"{i}.png"), frame)
    fd = os.open(small_disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:  # now completely full: not even a job record fits
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    batch = tmp_path / "videos"
    batch.mkdir()
    for name in ("a.mp4", "b.mp4"):
        write_video(batch / name, pattern_frames(3))
    code, err = run(batch, small_disk / "out", *MODEL)  # a folder of videos stops at the first: all would fail
    assert code == 2 and "disk full" in err and "--resume" in err and "b.mp4" not in err, err
    for out in (small_disk / "mid.png", small_disk / "o.mp4", small_disk / "more"):
        args = (tmp_path / "0.png", tmp_path / "1.png") if out.suffix == ".png" else (src,)
        code, err = run(*args, out, *MODEL)
        assert code == 2 and "disk full" in err, err
        assert not out.exists()


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("--factor", "1"), "integer >= 2"),
        (("--fps", "abc"), "invalid target frame rate"),
        (("--codec", "nonesuch"), "unknown video encoder 'nonesuch'"),
        (("--pix-fmt", "yuv420p", "--codec", "ffv1", "--crf", "10"), "lossless"),
        (("--crf", "20", "--bitrate", "2M"), "not both"),
        (("--pix-fmt", "rgb48le"), "libx264 cannot encode pixel format 'rgb48le'"),
        (("--batch-size", "0"), "batch size must be a positive integer"),
        (("--start", "later"), "invalid start"),
        (("--device", "tpu"), "unknown device"),
        (("--fp16", "--device", "cpu"), "--fp16 needs a GPU"),
        (("--scene-threshold", "3"), "scene-cut threshold"),
        (("--preset", "bogus"), "refused these settings"),
        (("--bisect-depth", "0"), "bisect depth"),
        (("--duration", "0"), "duration must be positive"),
        (("--max-frames", "0"), "max frames must be a positive integer"),
        # issue 25, defect 7: --fps 1e9 planned two billion frames and hung, growing memory
        (("--fps", "1e9"), "at most 1024 are made, so --fps at most 25600 here"),
        (("--fps", "25601", "--slowmo", "4"), "--fps at most 25600"),
        (("--factor", "5000"), "more than the 1024 output frames per source frame"),
        (("--slowmo", "100000"), "more than the 1024 output frames per source frame"),
    ],
)
def test_bad_options(tmp_path, run, models, args, match):
    src = write_video(tmp_path / "in.mp4", pattern_frames(3))
    expect_error(run, tmp_path, src, tmp_path / "o.mp4", "--model", "video_test_blend", *args, match=match)


def test_absurd_rate_for_images_is_refused(tmp_path, run, models):
    import cv2

    folder = tmp_path / "seq"
    folder.mkdir()
    for i, frame in enumerate(pattern_frames(2)):
        cv2.imwrite(str(folder / f"{i}.png"), frame)
    expect_error(run, tmp_path, folder, tmp_path / "o", *MODEL, "--input-fps", "2", "--fps", "1e6",
                 match="--fps at most 2048 here")


def test_bad_paths(tmp_path, run, models):
    src = write_video(tmp_path / "in.mp4", pattern_frames(3))
    expect_error(run, tmp_path, src, tmp_path / "o.xyz", *MODEL, match="cannot tell what to write")
    expect_error(run, tmp_path, src, tmp_path / "o.png", *MODEL, match="needs a video or folder output")
    expect_error(run, tmp_path, src, *MODEL, match="give an input and an output")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "a.png").write_bytes(b"")
    (mixed / "b.mp4").write_bytes(b"")
    expect_error(run, tmp_path, mixed, tmp_path / "o", *MODEL, match="both images and videos")
    # a folder output onto an existing file: was a raw "[Errno 20] Not a directory" (issue 25), and a leftover
    (tmp_path / "notes").write_text("mine")
    for force in ((), ("--force",), ("--resume",)):  # --resume took it for a finished output
        err = expect_error(run, tmp_path, src, tmp_path / "notes", *MODEL, *force, match="is a file")
        assert "Errno" not in err
    batch = tmp_path / "videos"
    batch.mkdir()
    write_video(batch / "clip.mp4", pattern_frames(3))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "clip").write_text("mine")
    expect_error(run, tmp_path, batch, tmp_path / "out", *MODEL, "--force", "--ext", ".png", match="is a file")


def test_resolve_encoding_rules():
    common = dict(width=64, height=48, source_bits=8, source_pix_fmt="yuv420p", color=ColorInfo(),
                  time_base=Fraction(1, 50), rate=Fraction(50))  # fmt: skip
    plan = resolve_encoding(Path("o.mp4"), EncodeOptions(), **common)
    assert (plan.codec, plan.pix_fmt, plan.options["crf"]) == ("libx264", "yuv420p", "18")
    assert resolve_encoding(Path("o.webm"), EncodeOptions(), **common).codec == "libvpx-vp9"
    with pytest.raises(VfikitError, match="even width and height"):
        resolve_encoding(Path("o.mp4"), EncodeOptions(), **{**common, "width": 63})
    assert resolve_encoding(Path("o.mp4"), EncodeOptions(pix_fmt="yuv444p"), **{**common, "width": 63}).bits == 8
    with pytest.raises(VfikitError, match="cannot store 10-bit"):
        resolve_encoding(Path("o.mp4"), EncodeOptions(codec="mpeg4"), **{**common, "source_bits": 10})
    with pytest.raises(VfikitError, match="cannot hold"):
        resolve_encoding(Path("o.webm"), EncodeOptions(codec="libx264"), **common)
    with pytest.raises(VfikitError, match="choose one of"):
        resolve_encoding(Path("o.gif"), EncodeOptions(), **common)
    assert parse_bitrate("8M") == 8_000_000 and parse_bitrate("2500k") == 2_500_000
    with pytest.raises(VfikitError, match="invalid bitrate"):
        parse_bitrate("fast")


def test_training_clips_use_the_same_decoder_with_their_plain_conversion(tmp_path):
    """data.sequences reads videos through VideoReader(plain_rgb=True): the frames PyAV's default RGB
    conversion gives (the training data's), and a truncated clip is refused there too."""
    from vfikit.data.sequences import Clip, read_clip
    from vfikit.video.sources import TruncatedVideoError

    full = write_video(tmp_path / "full.mp4", pattern_frames(50), container_options={"movflags": "faststart"})
    with av.open(str(full)) as c:
        plain = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    frames = read_clip(Clip("full", full))
    assert len(frames) == 50 and all(np.array_equal(a, b) for a, b in zip(frames, plain))
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(TruncatedVideoError):
        read_clip(Clip("cut", cut))


@pytest.mark.parametrize("missing", ["onnx", "onnxruntime"])
def test_onnx_backend_and_export_without_the_extra_give_an_install_hint(tmp_path, run, models, monkeypatch, capsys,
                                                                        missing):
    """Without the [onnx] extra, --backend onnx and `vfikit export` ended in OnnxExporterError's traceback
    (issue 25, defect 6); now a one-line hint, exit 2, nothing written."""
    import sys

    from vfikit import cli

    monkeypatch.setitem(sys.modules, missing, None)  # `import onnx` now fails as if it were not installed
    src = write_video(tmp_path / "in.mp4", pattern_frames(3))
    err = expect_error(run, tmp_path, src, tmp_path / "o.mp4", "--model", "guided_adacof_k5.vfikit",
                       "--device", "cpu", "--backend", "onnx", match='pip install "vfikit[onnx]"')
    assert len(err.strip().splitlines()) == 1
    if missing == "onnx":  # exporting needs only onnx
        assert cli.main(["export", "guided_adacof_k5.vfikit", str(tmp_path / "net.onnx")]) == 2
        err = capsys.readouterr().err
        assert 'pip install "vfikit[onnx]"' in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
        assert not (tmp_path / "net.onnx").exists()


def test_a_folder_that_appears_while_a_job_runs_is_not_replaced(tmp_path):
    """Checked before the job, the output did not exist; a folder of the user's made there meanwhile survives."""
    from vfikit.video.workspace import MANIFEST, replace_into_place

    new = tmp_path / ".frames.vfikit-partial"
    new.mkdir()
    (new / "00000000.png").write_bytes(b"frame")
    (new / MANIFEST).write_text("{}")
    out = tmp_path / "frames"
    out.mkdir()
    (out / "photo.jpg").write_bytes(b"a photo")
    with pytest.raises(VfikitError, match="vfikit did not write"):
        replace_into_place(new, out)
    assert (out / "photo.jpg").read_bytes() == b"a photo" and (new / "00000000.png").is_file()
