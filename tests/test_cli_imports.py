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
