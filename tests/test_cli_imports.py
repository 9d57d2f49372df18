"""The CLI imports only what the job uses: an image pair loads no UI, training or ONNX module."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = ("gradio", "vfikit.ui", "vfikit.commands.ui", "vfikit.engine", "vfikit.engine.train", "tensorboard",
             "torch.utils.tensorboard", "onnx", "onnxruntime", "vfikit.models.onnx_network", "vfikit.data")

CHILD = """
import json, sys
from vfikit.cli import main
status = main(["interpolate", sys.argv[1], sys.argv[2], sys.argv[3]])
print(json.dumps({"status": status, "modules": sorted(sys.modules)}))
"""


def test_image_pair_imports_no_ui_training_or_onnx(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(tmp_path / name)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "a.png"), str(tmp_path / "b.png"),
                           str(tmp_path / "mid.png")], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["status"] == 0 and (tmp_path / "mid.png").is_file()
    loaded = set(report["modules"])
    assert "vfikit.commands.interpolate" in loaded  # the check would be empty if the job did not run
    wrong = sorted(m for m in loaded if any(m == f or m.startswith(f + ".") for f in FORBIDDEN))
    assert not wrong, f"an image pair imported {wrong}"


def test_console_entry_returns_mains_status_then_freezes_the_heap(monkeypatch, capsys):
    import gc
    from importlib import metadata

    from vfikit import cli

    scripts = [ep.value for ep in metadata.entry_points(group="console_scripts") if ep.name == "vfikit"]
    assert scripts == ["vfikit.cli:entry"]  # the installed `vfikit` script
    assert "entry()" in (ROOT / "src" / "vfikit" / "__main__.py").read_text()
    calls = []
    monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))
    for argv, status in ((["vfikit"], 0), (["vfikit", "no-such-command"], 2)):
        monkeypatch.setattr(sys, "argv", argv)
        try:
            assert cli.entry() == status
        except SystemExit as exc:  # argparse's usage error
            assert exc.code == status
    assert calls == ["freeze"]  # after a normal return only; main() itself never freezes
    cli.main([])
    assert calls == ["freeze"]
    capsys.readouterr()
