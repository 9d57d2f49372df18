"""Middlebury PSNR of the guided models with their guide's DIS settings changed (evaluation only: a speed
setting of the guide must keep quality within 0.01 dB; never tuned on it).

    python benchmarks/dis_settings_quality.py   # from the repository root, ../shared present
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from vfikit.data.benchmarks import open_benchmark
from vfikit.engine.evaluate import evaluate
from vfikit.hub import model_from

ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "middlebury_others"


def main() -> int:
    dataset = open_benchmark("middlebury", str(ROOT), None)
    for name in ("guided_adacof_k5_fast.vfikit", "guided_adacof_k5.vfikit"):
        for settings in ({}, {"finest_scale": 1}):
            model = model_from(name).eval()
            model.guide.config = dataclasses.replace(model.guide.config, **settings)
            start = time.time()
            report = evaluate(model, dataset, metrics=["psnr"], device="cpu", precision="fp32", progress=False,
                              info={"model": name})
            print(json.dumps({"model": name, "settings": settings, "psnr": report.summary["metrics"]["psnr"],
                              "seconds": round(time.time() - start, 1)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
