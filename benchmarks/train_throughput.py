"""Throughput of the training data pipeline and of short training runs (CPU or GPU).

    python benchmarks/train_throughput.py                         # generator + stream + two models
    python benchmarks/train_throughput.py --skip-models           # data pipeline only (fast)
    python benchmarks/train_throughput.py --archs cdfi --crop 256 --steps 8 --out benchmarks/results/train_cpu

Data rates use one torch thread (what a DataLoader worker gets). Training runs use the offline
recipe's data with ``train()`` in a fresh subprocess per case (channels_last on/off, OMP_WAIT_POLICY
PASSIVE/unset/ACTIVE), interleaved ``--repeats`` times, and report the median steps/s over the
steps after the first two (start-up excluded). Writes ``<out>.json`` and ``<out>.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_CLIPS = REPO.parent / "shared" / "data" / "clips"

CHILD = r"""
import json, sys, tempfile
from vfikit.config import load_config
from vfikit.engine.train import train
spec = json.loads(sys.argv[1])
with tempfile.TemporaryDirectory() as out:
    sets = [f"model.arch={spec['arch']}", f"data.crop={spec['crop']}", f"data.batch_size={spec['batch']}",
            f"train.steps={spec['steps']}", "train.log_every=1", f"train.val_every={10**9}",
            f"train.ckpt_every={10**9}", "train.tensorboard=false", "data.val=[]", f"train.out_dir={out}",
            f"train.channels_last={str(spec['channels_last']).lower()}", f"data.num_workers={spec['workers']}"]
    if spec["arch"] != "cdfi":
        sets.append("loss=[{name: charbonnier, weight: 1.0}, {name: g_spatial, weight: 0.01}, "
                    "{name: g_occlusion, weight: 0.005}]")
    result = train(load_config("offline_cdfi", sets), log=lambda m: None)
rates = [r["steps_per_s"] for r in result.history[2:]]
print(json.dumps({"steps_per_s": sorted(rates)[len(rates) // 2], "all": rates}))
"""


def _rate(fn, n: int) -> float:
    fn(0)
    t = time.perf_counter()
    for i in range(1, n + 1):
        fn(i)
    return n / (time.perf_counter() - t)


def data_rates(n: int) -> list[dict]:
    from vfikit.config import load_config
    from vfikit.data.factory import build_train_stream
    from vfikit.data.synthetic import SyntheticConfig, SyntheticDataset

    torch.set_num_threads(1)
    rows = []
    sources = [str(SHARED_CLIPS)] if SHARED_CLIPS.is_dir() else []
    for size in (128, 256):
        for textures in ([], sources) if sources else ([],):
            ds = SyntheticDataset(SyntheticConfig(size=[size, size], texture_sources=textures), seed=0)
            label = "synthetic, procedural textures" if not textures else "synthetic, + real-frame textures"
            rows.append({"what": label, "size": size, "samples_per_s": _rate(lambda i, ds=ds: ds[i], n)})
    cfg = load_config("offline_cdfi", check_external=False)
    stream = build_train_stream(cfg.data, seed=0, log=lambda m: None)
    rows.append({"what": "offline_cdfi training stream (augmented, 50/50 mix)", "size": 128,
                 "samples_per_s": _rate(lambda i: stream[i], n)})
    return rows


# (channels_last, OMP_WAIT_POLICY or None for unset)
CASES = ((True, "PASSIVE"), (True, None), (True, "ACTIVE"), (False, "PASSIVE"))


def model_rates(archs: list[str], crop: int, batch: int, steps: int, workers: int, repeats: int) -> list[dict]:
    """Median steps/s per case; the cases are interleaved ``repeats`` times (the machine's load drifts)."""
    runs: dict[tuple, list[float]] = {}
    loads: dict[tuple, list[float]] = {}
    for _ in range(repeats):
        for arch in archs:
            for channels_last, policy in CASES:
                spec = {"arch": arch, "crop": crop, "batch": batch, "steps": steps,
                        "channels_last": channels_last, "workers": workers}
                env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
                env["PYTHONPATH"] = str(REPO / "src")
                if policy is not None:
                    env["OMP_WAIT_POLICY"] = policy
                proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec)], capture_output=True,
                                      text=True, env=env, cwd=REPO, check=False)
                if proc.returncode != 0:
                    print(proc.stderr[-2000:], file=sys.stderr)
                    raise SystemExit(f"training case {spec} failed")
                rate = json.loads(proc.stdout.strip().splitlines()[-1])["steps_per_s"]
                key = (arch, channels_last, policy or "unset")
                runs.setdefault(key, []).append(rate)
                loads.setdefault(key, []).append(os.getloadavg()[0])
                print(key, round(rate, 3), flush=True)
    rows = []
    for (arch, channels_last, policy), rates in runs.items():
        med = sorted(rates)[len(rates) // 2]
        rows.append({"arch": arch, "crop": crop, "batch": batch, "channels_last": channels_last,
                     "omp_wait_policy": policy, "steps_per_s": med, "samples_per_s": med * batch, "runs": rates,
                     "load_average": loads[(arch, channels_last, policy)]})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", type=int, default=40, help="samples per data measurement")
    p.add_argument("--archs", nargs="*", default=["compressed_adacof_k5_d1", "cdfi"])
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--repeats", type=int, default=2, help="interleaved repetitions of every training case")
    p.add_argument("--skip-models", action="store_true")
    p.add_argument("--out", default="benchmarks/results/train_throughput")
    args = p.parse_args()
    sys.path.insert(0, str(REPO / "src"))
    report = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                    "load_average_at_start": os.getloadavg()},
        "data": data_rates(args.samples),
        "training": [] if args.skip_models else model_rates(args.archs, args.crop, args.batch, args.steps,
                                                             args.workers, args.repeats),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2))
    lines = ["# Training throughput", "", f"Machine: {report['machine']}", "",
             "| data source | size | samples/s (1 thread) |", "| --- | --- | --- |"]
    lines += [f"| {r['what']} | {r['size']} | {r['samples_per_s']:.1f} |" for r in report["data"]]
    if report["training"]:
        lines += ["", "| model | crop | batch | channels_last | OMP_WAIT_POLICY | steps/s (median) | samples/s "
                  "| runs | load average |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        lines += [f"| {r['arch']} | {r['crop']} | {r['batch']} | {r['channels_last']} | {r['omp_wait_policy']} "
                  f"| {r['steps_per_s']:.3f} | {r['samples_per_s']:.2f} | {', '.join(f'{x:.3f}' for x in r['runs'])} "
                  f"| {', '.join(f'{x:.1f}' for x in r['load_average'])} |" for r in report["training"]]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
