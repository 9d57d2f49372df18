"""The web page's logic without a browser: uploads, timing choices, models, preview, the job queue."""

from __future__ import annotations

import importlib.util
import shutil
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from ui_helpers import video_facts, write_clip, write_pair

from vfikit import cli
from vfikit.errors import VfikitError
from vfikit.ui.core import Previewer, find_choice, model_choices, model_legend, plan_text, stage_upload, timing_kwargs
from vfikit.ui.jobs import JobManager, JobRequest, _EventStream
from vfikit.ui.results import pair_downloads


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return write_clip(tmp_path / "clip.mp4")


def test_stage_video_copies_into_a_private_folder(tmp_path: Path, clip: Path) -> None:
    staged = stage_upload([clip], tmp_path / "staging", upload_root=tmp_path)
    assert staged.kind == "video" and (staged.width, staged.height, staged.frames) == (64, 48, 12)
    assert staged.pairs == 11 and staged.names == ("clip.mp4",)
    assert staged.paths[0].parent == staged.folder and staged.paths[0].name == "input.mp4"
    assert staged.folder.stat().st_mode & 0o077 == 0  # private to the user
    assert staged.paths[0].read_bytes() == clip.read_bytes()
    staged.remove()
    assert not staged.folder.exists() and clip.exists()


def test_stage_pair_orders_by_name_and_checks_sizes(tmp_path: Path) -> None:
    a, b = write_pair(tmp_path)
    staged = stage_upload([b, a], tmp_path / "staging", upload_root=None)
    assert staged.kind == "pair" and staged.names == ("a.png", "b.png") and staged.frames == 2
    small = tmp_path / "small.png"
    from PIL import Image

    Image.new("RGB", (64, 40)).save(small)
    with pytest.raises(VfikitError, match=r"64x40 but a.png is 64x48; all frames must have the same size"):
        stage_upload([a, small], tmp_path / "staging", upload_root=None)
    assert [p.name for p in (tmp_path / "staging").iterdir()] == [staged.folder.name]  # the failed one is gone


@pytest.mark.parametrize(
    ("names", "message"),
    [
        ([], "drop a video, or two images"),
        (["notes.txt"], "notes.txt is not a video or image file"),
        (["one.png"], "one.png is a single image; give two images"),
        (["a.png", "b.png", "c.png"], "give one video or two images, got 3 files"),
    ],
)
def test_stage_refuses_what_the_cli_refuses(tmp_path: Path, names: list[str], message: str) -> None:
    paths = []
    for name in names:
        (tmp_path / name).write_bytes(b"x")
        paths.append(tmp_path / name)
    with pytest.raises(VfikitError, match=message):
        stage_upload(paths, tmp_path / "staging", upload_root=None)


def test_stage_corrupt_video_gives_the_cli_message_with_the_uploaded_name(tmp_path: Path) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00not a video" * 50)
    with pytest.raises(VfikitError) as caught:
        stage_upload([bad], tmp_path / "staging", upload_root=None)
    assert str(caught.value).startswith("cannot read broken.mp4 as a video")
    assert "staging" not in str(caught.value) and "input.mp4" not in str(caught.value)
    assert "Errno" not in str(caught.value)  # not PyAV's raw "[Errno 1094995529]"


def test_stage_enforces_the_size_limit_and_the_upload_folder(tmp_path: Path, clip: Path) -> None:
    with pytest.raises(VfikitError, match="the upload limit is 0 MB"):
        stage_upload([clip], tmp_path / "staging", upload_root=None, max_bytes=100)
    with pytest.raises(VfikitError, match="only read from the page's own upload folder"):
        stage_upload([clip], tmp_path / "staging", upload_root=tmp_path / "uploads")
    with pytest.raises(VfikitError, match="only read from the page's own upload folder"):
        stage_upload([tmp_path / "uploads" / ".." / "clip.mp4"], tmp_path / "staging", upload_root=tmp_path / "uploads")


def test_timing_choices_map_to_the_cli_arguments() -> None:
    assert timing_kwargs("4x") == {"factor": 4}
    assert timing_kwargs("frame rate", " 24000/1001 ") == {"fps": "24000/1001"}
    assert timing_kwargs("slow motion", "4") == {"slowmo": "4"}
    with pytest.raises(VfikitError, match="invalid target frame rate 'sixty'"):
        timing_kwargs("frame rate", "sixty")
    with pytest.raises(VfikitError, match="enter the target frame rate"):
        timing_kwargs("frame rate", "")


@pytest.mark.parametrize("value", ["1", "abc", "2.5", ""])
def test_slow_motion_errors_speak_of_slow_motion_not_frame_rates(value: str) -> None:
    with pytest.raises(VfikitError) as caught:
        timing_kwargs("slow motion", value)
    assert "how many times slower" in str(caught.value) and "24000/1001" not in str(caught.value)


def test_download_names_follow_the_input_and_target(tmp_path: Path, clip: Path) -> None:
    car = clip.rename(tmp_path / "car turn.mp4")
    staged = stage_upload([car], tmp_path / "staging", upload_root=None)
    assert JobRequest(staged, None, "default", timing_kwargs("2x")).download_name() == "car_turn-2x"
    ntsc = JobRequest(staged, None, "d", timing_kwargs("frame rate", "24000/1001"))
    assert ntsc.download_name() == "car_turn-23.976fps"
    assert JobRequest(staged, None, "d", timing_kwargs("slow motion", "4")).download_name() == "car_turn-slowmo4"
    a, b = write_pair(tmp_path)
    pair = stage_upload([b, a], tmp_path / "staging", upload_root=None)
    assert JobRequest(pair, None, "d", timing_kwargs("4x")).download_name() == "a-b-4x"


def test_plan_says_what_a_run_will_make_before_it_starts(tmp_path: Path, clip: Path) -> None:
    staged = stage_upload([clip], tmp_path / "staging", upload_root=None)  # 12 frames at 12 fps
    assert plan_text(staged, timing_kwargs("2x"), "2", None) == (
        "12 fps, 12 frames \u2192 24 fps, 24 frames, 1.00 s; press Preview to estimate the time")
    assert plan_text(staged, timing_kwargs("slow motion", "4"), "2", 0.5).startswith(
        "12 fps, 12 frames \u2192 12 fps, 48 frames, 4.00 s; about 18 s here")  # 36 new frames at 0.5 s
    assert plan_text(staged, timing_kwargs("8x"), "2", 3.0).endswith("about 5 min here")  # 84 new x 3 s: 4.2 min
    a, b = write_pair(tmp_path)
    pair = stage_upload([a, b], tmp_path / "staging", upload_root=None)
    assert plan_text(pair, timing_kwargs("4x"), "2", 0.1).startswith(
        "two images 0.5 s apart: 3 in-between frame(s), a zip of PNGs; about 1 s here")
    assert "1 in-between frame(s), a PNG" in plan_text(pair, timing_kwargs("2x"), "2", None)
    assert plan_text(pair, timing_kwargs("frame rate", "1"), "2", None).startswith("no frame falls between")


def test_model_menu_puts_the_default_first_then_weight_free_models() -> None:
    choices = model_choices("cpu")
    assert choices[0].name is None and choices[0].label.startswith("guided_adacof_k5_fast (default")
    names = [c.name for c in choices]
    assert "overlay" in names and "flow_dis" in names
    assert all(c.trained for c in choices if c.name is None)
    assert find_choice(None, choices) is choices[0]
    with pytest.raises(VfikitError, match="unknown model choice"):
        find_choice("cdfi.official", choices)
    legend = model_legend(choices).splitlines()
    assert len(legend) == len(choices) and all(c.purpose for c in choices)  # one line per model
    assert legend[-1].startswith("- **overlay**: a cross-fade")


def test_preview_middle_frame_against_the_average(tmp_path: Path, clip: Path) -> None:
    staged = stage_upload([clip], tmp_path / "staging", upload_root=None)
    previewer = Previewer("cpu")
    average = previewer(staged, "overlay", 3)
    assert average.middle.shape == (48, 64, 3) and average.model == "overlay" and average.pair == 3
    assert np.abs(average.middle.astype(int) - average.average.astype(int)).max() <= 1  # overlay is the average
    flow = previewer(staged, "flow_dis", 3)
    # the square moves 3 px per frame: flow puts it half-way, where the average shows two ghosts
    assert np.abs(flow.middle.astype(int) - flow.average.astype(int)).max() > 50
    with pytest.raises(VfikitError, match="past the end of the video"):
        previewer(staged, "overlay", 11)


def test_event_stream_reads_the_library_progress_bar() -> None:
    from vfikit.video.threads import progress_bar

    class Conn:
        def __init__(self) -> None:
            self.events: list[tuple] = []

        def send(self, event: tuple) -> None:
            self.events.append(event)

    conn = Conn()
    old = sys.stderr
    sys.stderr = _EventStream(conn)
    try:
        bar = progress_bar(5, "out.mp4", True)
        assert bar.mininterval <= 0.5  # the page hears of frames at least twice a second, not every 30 s
        bar.update(1)
        assert conn.events == [("progress", 1, 5)]  # the first frame is reported at once
        for _ in range(4):
            bar.update(1)
        bar.close()
        print("vfikit: note: wrote out.mp4", file=sys.stderr)
    finally:
        sys.stderr = old
    assert ("progress", 5, 5) in conn.events
    assert conn.events[-1] == ("note", "wrote out.mp4")


def test_log_progress_shows_the_first_frame_then_stays_quiet(monkeypatch) -> None:
    import io

    from vfikit.video.threads import LOG_INTERVAL, progress_bar

    log = io.StringIO()  # a log file: not a terminal, no progress_interval
    monkeypatch.setattr(sys, "stderr", log)
    bar = progress_bar(100, "clip", True)
    assert log.getvalue() == ""  # no empty "0 frames" line while the model loads
    bar.update(1)
    assert "1/100" in log.getvalue()  # the first frame out is logged at once, not after LOG_INTERVAL
    for _ in range(98):
        bar.update(1)
    assert log.getvalue().count("\r") == 1 and bar.mininterval == LOG_INTERVAL
    bar.update(1)
    bar.close()
    assert "100/100" in log.getvalue()


def test_job_runs_interpolate_video_and_reports_progress(tmp_path: Path, clip: Path) -> None:
    manager = JobManager(tmp_path / "jobs")
    try:
        staged = stage_upload([clip], tmp_path / "staging", upload_root=None)
        job = manager.submit(JobRequest(staged, "overlay", "overlay", timing_kwargs("2x")))
        queued = manager.submit(JobRequest(staged, "overlay", "overlay", timing_kwargs("2x")))
        assert manager.status(queued.id).state == "queued"
        manager.cancel(queued.id)
        status = manager.wait(job.id, timeout=60)
        assert status.state == "done", status.message
        assert (status.done, status.total) == (24, 24) and status.fraction == 1.0
        assert "12 source frames -> 24 output frames" in status.message
        assert video_facts(status.output) == (24, pytest.approx(1.0))
        assert not (job.folder / "input").exists()  # the input copy is deleted after the job
        assert staged.folder.exists()  # the page's own copy stays for the next run
        assert manager.wait(queued.id, timeout=10).state == "cancelled"
        assert not queued.folder.exists()
    finally:
        manager.close()
    assert not (tmp_path / "jobs").exists()


def test_job_cancel_stops_the_process_and_leaves_nothing(tmp_path: Path, clip: Path) -> None:
    manager = JobManager(tmp_path / "jobs")
    try:
        staged = stage_upload([clip], tmp_path / "staging", upload_root=None)
        job = manager.submit(JobRequest(staged, None, "default", timing_kwargs("8x")))
        waiting = manager.submit(JobRequest(staged, "overlay", "overlay", timing_kwargs("2x")))
        assert manager.wait(job.id, timeout=0.5).state in ("queued", "running")
        while manager.status(job.id).state == "queued":
            time.sleep(0.02)
        assert manager.status(waiting.id).ahead == 1  # the running job counts
        assert "queued: 1 job(s) ahead" in manager.status(waiting.id).text()
        assert manager.cancel(waiting.id)
        assert manager.status(waiting.id).state == "cancelled"  # at once, not when its turn comes
        assert manager.cancel(job.id)
        status = manager.wait(job.id, timeout=20)
        assert status.state == "cancelled" and status.output is None
        assert not job.folder.exists() and not waiting.folder.exists()
        assert not manager.cancel(job.id)  # nothing left to cancel
    finally:
        manager.close()


def test_pair_job_gives_png_frames_and_an_animation(tmp_path: Path) -> None:
    from PIL import Image

    manager = JobManager(tmp_path / "jobs")
    try:
        a, b = write_pair(tmp_path)
        pair = stage_upload([a, b], tmp_path / "staging", upload_root=None)
        done = manager.wait(manager.submit(JobRequest(pair, "overlay", "overlay", timing_kwargs("4x"))).id, 60)
        assert done.state == "done", done.message
        assert done.output.name == "a-b-4x.zip"
        with zipfile.ZipFile(done.output) as archive:
            assert archive.namelist() == ["a-b-4x-1.png", "a-b-4x-2.png", "a-b-4x-3.png"]  # the in-between frames
            with archive.open("a-b-4x-2.png") as member:
                assert Image.open(member).size == (64, 48)
        with Image.open(done.animation) as animation:  # a to b and back: 5 frames + 3 on the way back
            assert animation.n_frames == 8 and animation.info.get("loop") == 0
        assert manager.outputs() == [done.output, done.animation]
    finally:
        manager.close()


def test_one_in_between_frame_is_a_png_and_none_is_an_error(tmp_path: Path) -> None:
    from PIL import Image

    a, b = write_pair(tmp_path)
    frames = tmp_path / "frames"
    frames.mkdir()
    middle = tmp_path / "middle.png"
    Image.new("RGB", (64, 48), (128, 128, 128)).save(middle)
    for index, source in enumerate([a, middle, b]):  # what the library writes for 2x: first, middle, last
        shutil.copyfile(source, frames / f"{index:08d}.png")
    download, animation = pair_downloads(frames, [a, b], tmp_path, "a-b-2x", made=1)
    assert download == tmp_path / "a-b-2x.png" and Image.open(download).size == (64, 48)
    assert Image.open(animation).n_frames == 4 and not frames.exists()  # a, middle, b, middle
    frames.mkdir()
    shutil.copyfile(a, frames / "00000000.png")
    with pytest.raises(VfikitError, match="no frame falls between the two images"):
        pair_downloads(frames, [a, b], tmp_path, "a-b-x", made=0)


def test_pruning_deletes_old_results_and_tells_the_page(tmp_path: Path) -> None:
    deleted: list[Path] = []
    manager = JobManager(tmp_path / "jobs", keep=1, on_delete=deleted.append)
    jobs = []
    for number in range(2):  # two finished jobs, as the worker leaves them
        job = manager.submit(JobRequest(_fake_input(tmp_path / f"in{number}"), "overlay", "o", {"factor": 2}))
        manager.cancel(job.id)  # keeps the worker off it; then finish it by hand
        job.output = job.folder / "result.mp4"
        job.folder.mkdir(parents=True, exist_ok=True)
        job.output.write_bytes(b"x")
        manager._finish(job, "done", "ok")
        jobs.append(job)
    old, new = (manager.status(j.id) for j in jobs)
    assert old.output is None and "deleted" in old.message and not jobs[0].folder.exists()
    assert deleted == [jobs[0].folder / "result.mp4"]  # the page drops its copy of it
    assert new.output is not None and new.output.is_file()
    manager.close()


def _fake_input(folder: Path):
    from vfikit.ui.core import StagedInput

    folder.mkdir(parents=True)
    (folder / "input.mp4").write_bytes(b"x")
    return StagedInput("video", folder, (folder / "input.mp4",), ("clip.mp4",), 64, 48, 12)


def test_job_failure_shows_the_library_message_with_the_uploaded_name(tmp_path: Path, clip: Path) -> None:
    manager = JobManager(tmp_path / "jobs")
    try:
        staged = stage_upload([clip], tmp_path / "staging", upload_root=None)
        staged.paths[0].unlink()
        staged.paths[0].write_bytes(b"\x00garbage" * 50)  # the file went bad after the checks
        job = manager.submit(JobRequest(staged, "overlay", "overlay", timing_kwargs("2x")))
        status = manager.wait(job.id, timeout=60)
        assert status.state == "failed"
        assert status.message.startswith("cannot read clip.mp4 as a video"), status.message
        assert "Traceback" not in status.message and str(tmp_path) not in status.message
    finally:
        manager.close()


def test_ui_command_without_gradio_says_how_to_install(monkeypatch, capsys) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gradio" else real(name, *a))
    assert cli.main(["ui"]) == 2
    assert 'pip install "vfikit[ui]"' in capsys.readouterr().err
