"""`vfikit ui` in a real browser (Debian's chromium driven by Playwright; no browser download).

One server (started as ``python -m vfikit ui``, as a user would) serves every test of this module.
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
import urllib.request
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
        self.process = subprocess.Popen([sys.executable, "-m", "vfikit", "ui"], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, env=env)
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


@pytest.fixture(scope="module")
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chrome = pw.chromium.launch(executable_path=CHROMIUM, args=CHROME_FLAGS)
        yield chrome
        chrome.close()


@pytest.fixture
def page(browser, server: Server):
    context = browser.new_context(viewport={"width": 1200, "height": 1500})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(server.url)
    page.wait_for_selector("#vfikit-upload input[type=file]", state="attached")
    yield page
    context.close()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("ui-inputs")
    a, b = write_pair(folder)
    bad = folder / "broken.mp4"
    bad.write_bytes(b"\x00this is not a video" * 64)
    return {"clip": write_clip(folder / "clip.mp4"), "a": a, "b": b, "bad": bad}


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


def fetch_result(page, folder: Path) -> Path:
    """Download the result through the page's download link."""
    href = page.locator("#vfikit-download a[href]").first.get_attribute("href")
    path = folder / "downloaded.mp4"
    with urllib.request.urlopen(href, timeout=30) as response:  # the server is on 127.0.0.1
        path.write_bytes(response.read())
    return path


def test_video_preview_run_and_download(page, inputs, tmp_path: Path) -> None:
    upload(page, inputs["clip"])
    page.wait_for_function("document.querySelector('#vfikit-info').innerText.includes('12 frames')")
    choose_model(page, "flow_dis (no weights)")
    page.click("#vfikit-preview-button")
    page.wait_for_function("document.querySelectorAll('#vfikit-preview img').length == 2")
    assert "flow_dis" in page.inner_text("#vfikit-preview-caption")
    page.click("#vfikit-run")
    assert wait_state(page, "done failed cancelled") == "done", page.inner_text("#vfikit-progress")
    assert "12 source frames -> 24 output frames" in page.inner_text("#vfikit-progress")
    page.wait_for_selector("#vfikit-result video")
    shoot(page, "ui-video.png", tmp_path)
    assert video_facts(fetch_result(page, tmp_path)) == (24, pytest.approx(1.0))  # 12 frames at 12 fps, 2x
    assert page.inner_text("#vfikit-error").strip() == ""


def test_image_pair_preview_and_4x(page, inputs, tmp_path: Path) -> None:
    upload(page, inputs["b"], inputs["a"])
    page.wait_for_function("document.querySelector('#vfikit-info').innerText.includes('two images')")
    assert "a.png then b.png" in page.inner_text("#vfikit-info")
    choose_model(page, "overlay (no weights)")
    page.click("#vfikit-preview-button")
    page.wait_for_function("document.querySelectorAll('#vfikit-preview img').length == 2")
    page.get_by_label("4x").check()
    page.click("#vfikit-run")
    assert wait_state(page, "done failed cancelled") == "done", page.inner_text("#vfikit-progress")
    page.wait_for_selector("#vfikit-download a[href]")
    shoot(page, "ui-pair.png", tmp_path)
    # two images 1/2 s apart (2 fps), 4x: 5 frames at 8 fps
    assert video_facts(fetch_result(page, tmp_path)) == (5, pytest.approx(5 / 8))


def test_corrupt_file_shows_the_cli_message(page, inputs, tmp_path: Path) -> None:
    upload(page, inputs["bad"])
    # Gradio overlays its timer ("processing | 0.1/0.1s") on the element while the event finishes: wait it out
    page.wait_for_function("(() => { const t = document.querySelector('#vfikit-error').innerText;"
                           " return t.includes('broken.mp4') && !/processing \\| [0-9.]+/.test(t); })()")
    text = page.inner_text("#vfikit-error")
    assert text.startswith("cannot read broken.mp4 as a video"), text
    assert "Traceback" not in text and "vfikit-ui-" not in text  # no stack trace, no private path
    shoot(page, "ui-error.png", tmp_path)
    page.click("#vfikit-run")  # nothing valid was uploaded: a message, not a job
    page.wait_for_function("document.querySelector('#vfikit-error').innerText.includes('first')")


def test_reload_picks_up_the_running_job_and_cancel_stops_one(page, inputs, tmp_path: Path) -> None:
    upload(page, inputs["clip"])
    page.wait_for_function("document.querySelector('#vfikit-info').innerText.includes('12 frames')")
    choose_model(page, "flow_dis (no weights)")
    page.get_by_label("8x").check()
    page.click("#vfikit-run")
    wait_state(page, "queued running")
    page.reload()  # the job lives on the server: the fresh page finds it and shows its result
    assert wait_state(page, "done failed cancelled") == "done", page.inner_text("#vfikit-progress")
    assert "96 output frames" in page.inner_text("#vfikit-progress")
    page.wait_for_selector("#vfikit-download a[href]")
    upload(page, inputs["clip"])
    page.wait_for_function("document.querySelector('#vfikit-info').innerText.includes('12 frames')")
    page.click("#vfikit-run")
    wait_state(page, "queued running")
    page.click("#vfikit-cancel")
    assert wait_state(page, "done failed cancelled") == "cancelled"
