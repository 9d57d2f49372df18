"""Max abs error of every model golden through the official-file loader (the numbers in docs/models.md).

Run from the repository root: ``PYTHONPATH=src python benchmarks/model_golden_errors.py``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests is a package

from tests.models.golden_models import golden_output, skip_reason
from tests.models.test_model_goldens import GOLDENS, run_official_pipeline, write_official_file

from vfikit import create_model


def main() -> int:
    if skip_reason():
        print(skip_reason())
        return 1
    print("| golden | max abs error (non-fragile) | all pixels | fragile pixels | max abs output |")
    print("|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, (arch, manifest, t, order) in GOLDENS.items():
            path = Path(tmp) / f"{name}.weights"
            write_official_file(arch, manifest, path)
            out, _ = run_official_pipeline(create_model(arch, weights=path), arch, t)
            out = (out.flip(1) if order == "bgr" else out).numpy()
            gold, fragile = golden_output(name)
            diff = np.abs(out - gold)
            print(f"| {name} | {diff[..., ~fragile].max():.2g} | {diff.max():.2g} | {int(fragile.sum())} "
                  f"| {np.abs(gold).max():.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
