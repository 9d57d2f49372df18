"""`vfikit ui` in a real browser (Debian's chromium driven by Playwright; no browser download).

One server (started as ``python -m vfikit ui --keep-jobs 1``, as a user would) serves every test of this
module; each job's result replaces the previous one's, so pruning is tried as a side effect.
Skipped with the reason when Gradio, Playwright or chromium is missing. Set VFIKIT_UI_SCREENSHOTS to a
folder to keep the screenshots (they always go to the test's tmp folder).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from ui_helpers import video_facts, write_clip, write_pair

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"), "/usr/bin/chromium")
                 if p and Path(p).is_file()), None)
CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"]

if importlib.util.find_spec("gradio") is None:
    pytest.skip('Gradio is not installed (pip install -e ".[ui]")', allow_module_level=True)
if importlib.util.find_spec("playwright") is None:
    pytest.skip('Playwright is not installed (pip install -e ".[dev]")', allow_module_level=True)
if CHROMIUM is None:
    pytest.skip("chromium is not installed (Debian: apt-get install -y chromium)", allow_module_level=True)


class Server:
    """``python -m vfikit ui`` in a subprocess; its URL and private folder come from what it prints."""

    def __init__(self) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]))
        command = [sys.executable, "-m", "vfikit", "ui", "--keep-jobs", "1"]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.lines: list[str] = []
        self.errors: list[str] = []
        threading.Thread(target=self._read, args=(self.process.stderr, self.errors), daemon=True).start()
        deadline = time.monotonic() + 90
        self.url = self.folder = None
        while time.monotonic() < deadline and (self.url is None or self.folder is None):
            line = self.process.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            if m := re.search(r"serving on (http://\S+)", line):
                self.url = m.group(1)
            if m := re.search(r"results live in (\S+) and", line):
                self.folder = Path(m.group(1))
        if self.url is None:
            self.stop()
            raise AssertionError("vfikit ui did not start:\n" + "".join(self.lines + self.errors))

    @staticmethod
    def _read(stream, sink: list[str]) -> None:
        for line in stream:
            sink.append(line)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    srv = Server()
    yield srv
    assert srv.stop() == 0, "".join(srv.errors)
    assert not srv.folder.exists(), "the private upload folder must be deleted on exit"
    assert "Traceback" not in "".join(srv.errors), "".join(srv.errors)
    assert "leaked semaphore" not in "".join(srv.errors), "".join(srv.errors)  # a cancelled job cleans up


@pytest.fixture(scope="module")
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chrome = pw.chromium.launch(executable_path=CHROMIUM, args=CHROME_FLAGS)
        yield chrome
        chrome.close()


@pytest.fixture
def page(browser, server: Server):
    context = browser.new_context(viewport={"width": 1440, "height": 900}, accept_downloads=True)
    page = open_page(context, server)
    yield page
    context.close()


def open_page(context, server: Server):
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(server.url)
    page.wait_for_selector("#vfikit-upload input[type=file]", state="attached")
    return page


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("ui-inputs")
    a, b = write_pair(folder)
    bad = folder / "broken.mp4"
    bad.write_bytes(b"\x00this is not a video" * 64)
    slow = write_clip(folder / "slow.mp4", n=24, width=640, height=360)  # 8x: seconds of work even for flow_dis
    return {"clip": write_clip(folder / "clip.mp4"), "slow": slow, "a": a, "b": b, "bad": bad}


def shoot(page, name: str, tmp_path: Path) -> None:
    page.screenshot(path=str(tmp_path / name), full_page=True)
    if folder := os.environ.get("VFIKIT_UI_SCREENSHOTS"):
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / name), full_page=True)


def upload(page, *files: Path) -> None:
    page.locator("#vfikit-upload input[type=file]").set_input_files([str(f) for f in files])


def choose_model(page, label: str) -> None:
    page.click("#vfikit-model input")
    page.get_by_role("option", name=label).click()


def wait_state(page, states: str) -> str:
    """Wait until the progress box shows one of ``states`` (space-separated); returns the state."""
    wanted = states.split()
    page.wait_for_function(
        "s => s.includes(document.querySelector('#vfikit-progress [data-state]')?.dataset.state)", arg=wanted
    )
    return page.get_attribute("#vfikit-progress [data-state]", "data-state")


def download(page, folder: Path) -> tuple[Path, str]:
    """Click the page's download button; the file (under the name the browser was given) and its URL."""
    with page.expect_download() as info:
        page.click("#vfikit-download")
    path = folder / info.value.suggested_filename
    info.value.save_as(path)
    return path, info.value.url


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:  # the server is on 127.0.0.1
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def text(page, selector: str) -> str:
    return page.inner_text(selector).strip()


# The page's own error message inside #vfikit-error: Gradio's status overlay sits in the same block and keeps its
# timer text ("0.0s") in the DOM while a quiet event (the job poll) runs, even with its progress hidden.
ERROR = "#vfikit-error [role=alert]"


def error_message(page) -> str:
    """The error the page shows, '' when none."""
    return page.evaluate("s => document.querySelector(s)?.innerText.trim() ?? ''", ERROR)


def wait_text(page, selector: str, part: str) -> None:
    page.wait_for_function("([s, t]) => (document.querySelector(s)?.innerText || '').includes(t)", arg=[selector, part])


def test_video_form_says_what_run_will_do_then_runs(page, inputs, tmp_path: Path) -> None:
    assert page.is_disabled("#vfikit-cancel")  # no job yet: nothing to cancel
    assert not page.is_visible("#vfikit-target-value") and not page.is_visible("#vfikit-pair-fps")
    assert len(text(page, "#vfikit-models").splitlines()) >= 4  # one line per model
    assert "Use via API" not in page.inner_text("body")
    upload(page, inputs["clip"])
    wait_text(page, "#vfikit-plan", "12 fps, 12 frames \u2192 24 fps, 24 frames, 1.00 s; press Preview")
    assert not page.is_visible("#vfikit-pair-fps")  # only for two images
    choose_model(page, "flow_dis (no weights)")
    page.click("#vfikit-preview-button")
    page.wait_for_function("document.querySelectorAll('#vfikit-preview img').length == 2")
    assert "flow_dis" in page.inner_text("#vfikit-preview-caption")
    wait_text(page, "#vfikit-plan", "here")  # the estimate from the preview's time
    page.get_by_label("slow motion").check()
    page.locator("#vfikit-target-value textarea, #vfikit-target-value input").first.fill("2.5")
    wait_text(page, "#vfikit-plan", "how many times slower")
    assert "24000/1001" not in text(page, "#vfikit-plan")
    page.get_by_label("2x").check()
    page.wait_for_selector("#vfikit-target-value", state="hidden")
    page.click("#vfikit-run")
    assert wait_state(page, "done failed cancelled") == "done", page.inner_text("#vfikit-progress")
    assert "12 source frames -> 24 output frames" in page.inner_text("#vfikit-progress")
    page.wait_for_selector("#vfikit-result video")
    page.wait_for_function("document.querySelector('#vfikit-cancel button, button#vfikit-cancel').disabled")
    shoot(page, "ui-video.png", tmp_path)
    path, _ = download(page, tmp_path)
    assert path.name == "clip-2x.mp4"  # named after the input and the target
    assert video_facts(path) == (24, pytest.approx(1.0))  # 12 frames at 12 fps, 2x
    assert error_message(page) == ""


def test_image_pair_gives_png_frames_and_a_loop(page, inputs, tmp_path: Path) -> None:
    from PIL import Image

    upload(page, inputs["b"], inputs["a"])
    wait_text(page, "#vfikit-info", "a.png then b.png")
    page.wait_for_selector("#vfikit-pair-fps", state="visible")  # only for two images
    choose_model(page, "overlay (no weights)")
    page.get_by_label("4x").check()
    wait_text(page, "#vfikit-plan", "3 in-between frame(s), a zip of PNGs")
    page.click("#vfikit-run")
    assert wait_state(page, "done failed cancelled") == "done", page.inner_text("#vfikit-progress")
    page.wait_for_selector("#vfikit-animation img")
    wait_text(page, "#vfikit-download", "in-between frames as PNG")
    shoot(page, "ui-pair.png", tmp_path)
    zipped, zip_url = download(page, tmp_path)
    assert zipped.name == "a-b-4x.zip"
    with zipfile.ZipFile(zipped) as archive:
        assert archive.namelist() == ["a-b-4x-1.png", "a-b-4x-2.png", "a-b-4x-3.png"]
    loop = tmp_path / "loop.png"
    with urllib.request.urlopen(page.get_attribute("#vfikit-animation img", "src"), timeout=30) as response:
        loop.write_bytes(response.read())
    with Image.open(loop) as animation:
        assert animation.n_frames == 8  # a, 3 frames, b, and back
    assert http_status(zip_url) == 200
    page.get_by_label("2x").check()
    page.click("#vfikit-run")
    wait_text(page, "#vfikit-download", "a-b-2x.png")
    single, _ = download(page, tmp_path)
    assert single.name == "a-b-2x.png" and Image.open(single).size == (64, 48)
    assert http_status(zip_url) in (403, 404)  # --keep-jobs 1: the older result is gone, Gradio's copy too


def test_refused_upload_then_run_then_a_new_upload_replaces_it(page, inputs, tmp_path: Path) -> None:
    upload(page, inputs["bad"])
    wait_text(page, ERROR, "broken.mp4")
    message = error_message(page)
    assert message.startswith("cannot read broken.mp4 as a video"), message
    assert "Traceback" not in message and "vfikit-ui-" not in message and "Errno" not in message
    shoot(page, "ui-error.png", tmp_path)
    page.click("#vfikit-run")  # nothing valid was uploaded: a message saying what to do, not a job
    wait_text(page, ERROR, "Nothing to run yet: drop a video, or two images")
    upload(page, inputs["clip"])  # replaces the refused file instead of adding to it
    wait_text(page, "#vfikit-info", "12 frames")
    page.wait_for_function("s => !document.querySelector(s)", arg=ERROR)
    assert page.locator("#vfikit-upload").inner_text().count(".mp4") == 1


def test_reload_restores_the_job_and_cancel_works_queued_and_running(browser, server, page, inputs) -> None:
    upload(page, inputs["clip"])
    wait_text(page, "#vfikit-info", "12 frames")
    choose_model(page, "flow_dis (no weights)")
    page.get_by_label("8x").check()
    page.click("#vfikit-run")
    wait_state(page, "queued running")
    page.reload()  # the job lives on the server: the fresh page finds it, with its input, model and target
    wait_text(page, "#vfikit-progress", "clip.mp4 \u2192 8x with flow_dis")
    page.wait_for_function("document.querySelector('#vfikit-model input').value.startsWith('flow_dis')")
    assert page.get_by_label("8x").is_checked()
    assert wait_state(page, "done failed cancelled") == "done", page.inner_text("#vfikit-progress")
    assert "96 output frames" in page.inner_text("#vfikit-progress")
    upload(page, inputs["slow"])
    wait_text(page, "#vfikit-info", "24 frames")
    page.click("#vfikit-run")  # a long job (flow_dis and 8x are still chosen) ...
    wait_state(page, "running")
    page.click("#vfikit-run")  # ... and one queued behind it
    wait_text(page, "#vfikit-progress", "queued: 1 job(s) ahead")  # the running job counts
    page.click("#vfikit-cancel")
    assert wait_state(page, "done failed cancelled") == "cancelled"  # the queued job, at once
    other = open_page(page.context.browser.new_context(), server)  # a new tab shows the running job
    other.wait_for_function("Number(document.querySelector('#vfikit-progress [data-done]')?.dataset.done) > 0")
    other.click("#vfikit-cancel")  # once frames come out (the module's teardown checks nothing leaked)
    assert wait_state(other, "done failed cancelled") == "cancelled"
    other.context.close()


def test_phone_width_has_no_sideways_scrolling(browser, server) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844})
    phone = open_page(context, server)
    phone.wait_for_selector("#vfikit-run", state="visible")  # the page is laid out (raises if it never shows)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    context.close()
