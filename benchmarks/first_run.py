"""First run of a fresh install against the second, and warm start-up: whole ``vfikit interpolate`` processes.

Issue 24's checks: the first run (empty ``NUMBA_CACHE_DIR`` and ``VFIKIT_CACHE_DIR``, so numba compiles and the
precision is measured) at most 3 s slower than the second, and a warm run of an image pair within 2.5 s wall,
Python's start included. Each round gives every version fresh caches and runs it twice; then every version runs
``--warm`` times on filled caches. Versions and rounds are interleaved, so load affects them alike. A
``--baseline`` commit runs from a temporary git worktree (removed at the end), beside this checkout's sources.
Python's bytecode is written (``PYTHONDONTWRITEBYTECODE`` is dropped, as installs write it) and each version
runs once before the series so that it exists.

    python benchmarks/first_run.py --baseline eee4faa --rounds 5 --warm 8 \
        --out benchmarks/results/first_run_issue24_s9_cpu.md
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def write_pair(folder: Path, width: int = 640, height: int = 480) -> tuple[Path, Path]:
    """A smooth random texture and the same texture shifted by (6, 3) px, as PNG files."""
    from PIL import Image

    rng = np.random.default_rng(0)
    noise = rng.random((height // 8 + 2, width // 8 + 2, 3))
    big = np.asarray(Image.fromarray((noise * 255).astype(np.uint8)).resize((width + 16, height + 16),
                                                                             Image.BICUBIC))
    paths = (folder / "a.png", folder / "b.png")
    Image.fromarray(big[:height, :width]).save(paths[0])
    Image.fromarray(big[3:height + 3, 6:width + 6]).save(paths[1])
    return paths


def run_once(src: Path, cache: Path, pair: tuple[Path, Path], out: Path) -> tuple[float, float]:
    """One ``python -m vfikit interpolate A B OUT --force`` with sources ``src`` and caches under ``cache``:
    (wall s, CPU s of the process and its children, user + system)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(NUMBA_CACHE_DIR=str(cache / "numba"), VFIKIT_CACHE_DIR=str(cache / "vfikit"), PYTHONPATH=str(src))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "vfikit", "interpolate", str(pair[0]), str(pair[1]), str(out),
                           "--force", "--quiet"], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{src}: vfikit interpolate failed:\n{done.stderr}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def series(versions: dict[str, Path], rounds: int, warm: int, folder: Path) -> tuple[list, dict]:
    """Rows (version, round, first, second) and the warm walls per version."""
    pair = write_pair(folder)
    for name, src in versions.items():  # bytecode written, OS file cache filled
        run_once(src, folder / f"prime-{name}", pair, folder / "mid.png")
    rows = []
    for k in range(1, rounds + 1):
        for name, src in versions.items():
            cache = Path(tempfile.mkdtemp(dir=folder))
            rows.append((name, k, run_once(src, cache, pair, folder / "mid.png"),
                         run_once(src, cache, pair, folder / "mid.png")))
    walls: dict[str, list[float]] = {name: [] for name in versions}
    for _ in range(warm):
        for name, src in versions.items():
            walls[name].append(run_once(src, folder / f"prime-{name}", pair, folder / "mid.png")[0])
    return rows, walls


def table(rows: list, walls: dict, command: str) -> str:
    lines = ["# First run against the second, and warm start-up (whole processes, CPU)", "", f"`{command}`", "",
             f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs; "
             f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}; load average {os.getloadavg()[0]:.2f} "
             "at the end. A 640x480 texture pair shifted by (6, 3) px, `vfikit interpolate A B OUT --force --quiet`.",
             "", "| version | round | first wall s | second wall s | first cpu s | second cpu s "
             "| first - second, wall s |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, k, (fw, fc), (sw, sc) in rows:
        lines.append(f"| {name} | {k} | {fw:.2f} | {sw:.2f} | {fc:.2f} | {sc:.2f} | **{fw - sw:.2f}** |")
    lines += ["", "| version | warm runs, wall s | median | max |", "| --- | --- | --- | --- |"]
    for name, values in walls.items():
        lines.append(f"| {name} | {', '.join(f'{v:.2f}' for v in values)} | **{statistics.median(values):.2f}** | "
                     f"{max(values):.2f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default=None, help="a commit run beside this checkout's sources")
    parser.add_argument("--rounds", type=int, default=5, help="fresh-cache rounds per version (default 5)")
    parser.add_argument("--warm", type=int, default=8, help="warm runs per version (default 8)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vfikit-first-run-") as tmp:
        folder = Path(tmp)
        versions = {"this checkout": ROOT / "src"}
        if args.baseline:
            tree = folder / "baseline"
            subprocess.run(["git", "worktree", "add", "--detach", "-q", str(tree), args.baseline], cwd=ROOT, check=True)
            versions = {f"at {args.baseline}": tree / "src", **versions}
        try:
            rows, walls = series(versions, args.rounds, args.warm, folder)
        finally:
            if args.baseline:
                subprocess.run(["git", "worktree", "remove", "--force", str(folder / "baseline")], cwd=ROOT)
    text = table(rows, walls, " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]))
    print(text)
    if args.out is not None:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
