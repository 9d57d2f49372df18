"""Screenshot of `vfikit ui` for docs/ui.md: two images, the default model's preview, a finished 2x run.

Starts ``python -m vfikit ui``, drives Debian's chromium with Playwright (no browser download) and
writes the page to ``--out`` (scaled to 800 px and 256 colours):

    PYTHONPATH=src python tools/ui_screenshot.py ../shared/data/middlebury_others/input/Urban2/frame1{0,1}.png
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def shrink(path: Path, width: int = 800) -> None:
    """Scale the screenshot to ``width`` px and 256 colours: a page picture, a quarter of the bytes."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        small = im.resize((width, round(im.height * width / im.width)), Image.Resampling.LANCZOS)
    small.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(path, optimize=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("images", nargs=2, type=Path, help="two images to upload")
    p.add_argument("--out", type=Path, default=REPO / "docs" / "images" / "ui.png")
    p.add_argument("--chromium", default="/usr/bin/chromium")
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    server = subprocess.Popen([sys.executable, "-m", "vfikit", "ui"], stdout=subprocess.PIPE, text=True, env=env)
    try:
        url = None
        while url is None:
            line = server.stdout.readline()
            if not line:
                raise SystemExit("vfikit ui did not start")
            if m := re.search(r"serving on (http://\S+)", line):
                url = m.group(1)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, args=FLAGS)
            page = browser.new_page(viewport={"width": 1100, "height": 1200})
            page.set_default_timeout(180_000)
            page.goto(url)
            page.locator("#vfikit-upload input[type=file]").set_input_files([str(i) for i in args.images])
            page.wait_for_function("document.querySelector('#vfikit-info').innerText.includes('two images')")
            page.click("#vfikit-preview-button")
            page.wait_for_function("document.querySelectorAll('#vfikit-preview img').length == 2")
            page.click("#vfikit-run")
            page.wait_for_selector("#vfikit-progress [data-state=done]")
            page.wait_for_selector("#vfikit-download", state="visible")
            page.wait_for_timeout(1000)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out), full_page=True)
            browser.close()
        shrink(args.out)
        print(f"wrote {args.out}")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
