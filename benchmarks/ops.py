"""Time and peak memory of the sampling ops, forward and backward, per backend and size.

Each case runs in a fresh subprocess. CPU peak memory is the process's resident-set high-water
mark, reset (``/proc/self/clear_refs``) just before the measured call, minus the resident size at
that moment: the extra memory the call needed. CUDA uses ``torch.cuda.max_memory_allocated``.

    python benchmarks/ops.py                      # all sizes, CPU (+ CUDA when present)
    python benchmarks/ops.py --sizes 256x256 --ops adacof --repeats 3
    python benchmarks/ops.py --out benchmarks/results/ops_cpu

Writes ``<out>.json`` and ``<out>.md``. The reference backend is skipped where its estimated
memory (it materialises every tap) exceeds ``--reference-limit-gb``.
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

# op -> (taps per axis, dilation, channels): AdaCoF as CDFI's widest feature warp (F=11, D=2, 20 channels),
# DSepConv as EDSC (n=5, RGB), SepConv as the ICCV network (n=51, RGB).
CONFIGS = {"adacof": (11, 2, 20), "dsepconv": (5, 1, 3), "sepconv": (51, 1, 3)}
SIZES = ("256x256", "640x480", "1280x720", "1920x1080")

CHILD = r"""
import json, sys, time, torch
from vfikit.ops import adacof, dsepconv, sepconv
spec = json.loads(sys.argv[1])
torch.manual_seed(0)
dev = torch.device(spec["device"])
op, conv, backend = spec["op"], spec["convention"], spec["backend"]
size, dil, c = spec["taps"], spec["dilation"], spec["channels"]
h, w = spec["h"], spec["w"]
reach = (size - 1) * (dil if op == "adacof" else 1)
pad = reach if conv == "official" else 0
x = torch.rand(1, c, h + pad, w + pad, device=dev)
if op == "adacof":
    args = [x, torch.softmax(torch.randn(1, size * size, h, w, device=dev), 1),
            torch.randn(1, size * size, h, w, device=dev) * 2, torch.randn(1, size * size, h, w, device=dev) * 2]
    fn = lambda *a: adacof(*a, dil, convention=conv, backend=backend)
elif op == "dsepconv":
    args = [x, torch.randn(1, size, h, w, device=dev), torch.randn(1, size, h, w, device=dev),
            torch.randn(1, size * size, h, w, device=dev) * 2, torch.randn(1, size * size, h, w, device=dev) * 2,
            torch.rand(1, size * size, h, w, device=dev)]
    fn = lambda *a: dsepconv(*a, convention=conv, backend=backend)
else:
    args = [x, torch.randn(1, size, h, w, device=dev) * 0.1, torch.randn(1, size, h, w, device=dev) * 0.1]
    fn = lambda *a: sepconv(*a, convention=conv, backend=backend)
grad = torch.randn(1, c, h, w, device=dev)

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096
def hwm():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
def reset_peak():
    if dev.type == "cuda":
        torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats(); return torch.cuda.memory_allocated()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return rss()
def peak(base):
    if dev.type == "cuda":
        torch.cuda.synchronize(); return torch.cuda.max_memory_allocated() - base
    return hwm() - base
def sync():
    if dev.type == "cuda":
        torch.cuda.synchronize()

leaves = [a.requires_grad_(True) for a in args]
# warm-up on a 16x16 output (compilation / kernel-cache load), so the big call is measured cold-memory
cut = [a[..., :16 + (a.shape[2] - h), :16 + (a.shape[3] - w)].detach().clone().requires_grad_(True) for a in args]
out = fn(*cut); out.backward(torch.ones_like(out)); sync()
del out, cut
fwd_t, bwd_t = [], []
fwd_mem = bwd_mem = 0
t_start = time.perf_counter()
for r in range(spec["repeats"]):
    if r > 0 and time.perf_counter() - t_start > spec["budget_s"]:
        break
    base = reset_peak()
    t0 = time.perf_counter(); out = fn(*leaves); sync(); fwd_t.append(time.perf_counter() - t0)
    fwd_mem = max(fwd_mem, peak(base))
    t0 = time.perf_counter(); out.backward(grad); sync(); bwd_t.append(time.perf_counter() - t0)
    bwd_mem = max(bwd_mem, peak(base))
    for a in leaves: a.grad = None
    del out
fwd_t.sort(); bwd_t.sort()
print(json.dumps({"fwd_s": fwd_t[len(fwd_t) // 2], "bwd_s": bwd_t[len(bwd_t) // 2],
                  "fwd_peak_bytes": fwd_mem, "bwd_peak_bytes": bwd_mem, "out_bytes": c * h * w * 4,
                  "threads": torch.get_num_threads()}))
"""


def reference_bytes(op: str, h: int, w: int) -> float:
    size, _, c = CONFIGS[op]
    return 8.0 * c * size * size * h * w * 4  # ~8 live tap-sized temporaries in forward+backward


def run_case(spec: dict) -> dict:
    # Large blocks are mmapped and returned on free, so the resident size tracks live memory.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec)], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ops", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--conventions", nargs="+", default=["official", "clean"])
    p.add_argument("--sizes", nargs="+", default=list(SIZES))
    p.add_argument("--backends", nargs="+", default=["auto", "reference", "torch"])
    p.add_argument("--torch-cpu-max-pixels", type=int, default=640 * 480,
                   help="the tap-wise torch path is the GPU path; on CPU measure it only up to this size")
    p.add_argument("--budget-s", type=float, default=20.0, help="stop repeating a case after this long")
    p.add_argument("--devices", nargs="+", default=None, help="default: cpu, plus cuda when available")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--reference-limit-gb", type=float, default=6.0)
    p.add_argument("--out", default="benchmarks/results/ops_cpu")
    args = p.parse_args(argv)
    import torch

    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    rows = []
    for device in devices:
        for op in args.ops:
            for conv in args.conventions:
                for size in args.sizes:
                    w, h = (int(v) for v in size.split("x"))
                    for backend in args.backends:
                        taps, dil, c = CONFIGS[op]
                        spec = {"device": device, "op": op, "convention": conv, "backend": backend, "taps": taps,
                                "dilation": dil, "channels": c, "h": h, "w": w, "repeats": args.repeats,
                                "budget_s": args.budget_s}
                        if backend == "reference" and reference_bytes(op, h, w) > args.reference_limit_gb * 2**30:
                            res = {"skipped": f"needs ~{reference_bytes(op, h, w) / 2**30:.0f} GB"}
                        elif backend == "numba" and device != "cpu":
                            continue
                        elif backend == "torch" and device == "cpu" and h * w > args.torch_cpu_max_pixels:
                            res = {"skipped": "tap-wise path measured on CPU only up to 640x480"}
                        else:
                            t0 = time.perf_counter()
                            res = run_case(spec)
                            res["wall_s"] = round(time.perf_counter() - t0, 1)
                        row = {**spec, **res}
                        rows.append(row)
                        print(json.dumps(row), flush=True)
    meta = {"python": platform.python_version(), "torch": torch.__version__, "machine": platform.machine(),
            "cpu_count": os.cpu_count(), "processor": platform.processor()}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    out.with_suffix(".md").write_text(to_markdown(rows, meta))
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")
    return 0


def _mb(v: float) -> str:
    return f"{v / 2**20:.0f}"


def to_markdown(rows: list[dict], meta: dict) -> str:
    lines = [
        "# Sampling ops: time and peak extra memory",
        "",
        f"torch {meta['torch']}, Python {meta['python']}, {meta['cpu_count']} CPU cores. Batch 1. Configs: "
        + ", ".join(f"{op} (taps {t}, dilation {d}, {c} channels)" for op, (t, d, c) in CONFIGS.items())
        + ". `auto` is the default path (numba on CPU, tap-wise torch on CUDA). Memory is the extra peak of the"
        " call over what was resident before it (backward includes what forward kept). Median of the repeats.",
        "",
        "| device | op | convention | size | backend | fwd s | bwd s | fwd peak MB | bwd peak MB | output MB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        size = f"{r['w']}x{r['h']}"
        head = f"| {r['device']} | {r['op']} | {r['convention']} | {size} | {r['backend']} |"
        if "skipped" in r:
            lines.append(f"{head} skipped: {r['skipped']} | | | | |")
        elif "error" in r:
            lines.append(f"{head} error: {r['error']} | | | | |")
        else:
            lines.append(f"{head} {r['fwd_s']:.3f} | {r['bwd_s']:.3f} | {_mb(r['fwd_peak_bytes'])} | "
                         f"{_mb(r['bwd_peak_bytes'])} | {_mb(r['out_bytes'])} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
