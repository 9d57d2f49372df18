"""Speed, memory and size of models: latency (median and IQR after warm-up), frames/s, peak memory,
parameters and MACs at chosen frame sizes, on CPU and CUDA (docs/benchmarks.md).

Each case (model, size, device) runs by default in a fresh Python subprocess, so that the CPU peak
memory is the honest resident-set high-water mark of that case alone (``ru_maxrss``) and no case
warms caches for the next. On CUDA the peak is ``torch.cuda.max_memory_allocated``.

MACs: multiply-accumulates of one forward at batch 1, counted during a warm-up run: convolutions
and linear layers through forward hooks (``out.numel() * in_channels/groups * kh * kw``), plus the
sampling operators of :mod:`vfikit.ops` (per output value: SepConv n*n; AdaCoF F*F taps and
DSepConv n*n taps of 5 each: 4 for the bilinear sample and 1 for the weight). Element-wise work
(activations, softmax, padding, blending) and anything outside torch (OpenCV in ``flow_dis``) is
not counted; models whose main work is uncounted say so in ``uncounted``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vfikit.errors import VfikitError
from vfikit.runtime import DEFAULT_PRECISION, count_parameters, precision_dtype, resolve_device, resolve_precision

DEFAULT_SIZES = ((256, 256), (1280, 720), (1920, 1080))  # (width, height)
BILINEAR_MACS = 4


@dataclass(frozen=True)
class BenchSettings:
    """How long to measure: ``warmup`` untimed runs, then ``repeats`` timed runs (at least
    ``min_repeats``; stop adding repeats once ``max_seconds`` of timed runs have passed). ``precision``:
    ``"fp32"``, ``"auto"`` (as the video tool runs each model: bf16 for models that declare it on CPUs
    where bfloat16 is measured faster), ``"bf16"`` or ``"fp16"``, applied as autocast around the timed calls."""

    warmup: int = 2
    repeats: int = 10
    min_repeats: int = 3
    max_seconds: float = 60.0
    threads: int | None = None
    timeout: float = 1800.0
    precision: str = DEFAULT_PRECISION


@dataclass(frozen=True)
class BenchCase:
    """One measurement: a registered model (``arch`` or ``arch.tag``) at ``width`` x ``height`` on ``device``."""

    model: str
    width: int
    height: int
    device: str = "cpu"
    weights: str | None = None
    model_args: dict[str, Any] = field(default_factory=dict)


def parse_size(text: str) -> tuple[int, int]:
    """``"1280x720"`` -> (1280, 720) (width x height)."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise VfikitError(f"size must look like WIDTHxHEIGHT (e.g. 1280x720), got {text!r}")
    return int(parts[0]), int(parts[1])


@dataclass
class MacCounter:
    """MACs per source, filled while active (see module docstring for what is counted)."""

    by_kind: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, macs: int) -> None:
        self.by_kind[kind] = self.by_kind.get(kind, 0) + int(macs)

    @property
    def total(self) -> int:
        return sum(self.by_kind.values())


def _op_macs(op: str, named: dict[str, torch.Tensor]) -> int:
    """MACs of one sampling-op call from its (already validated) tensor arguments."""
    x = named["input"]
    if op == "adacof":
        n, taps, h, w = named["weight"].shape
        return n * x.shape[1] * h * w * taps * (BILINEAR_MACS + 1)
    if op == "dsepconv":
        n, k, h, w = named["vertical"].shape
        return n * x.shape[1] * h * w * k * k * (BILINEAR_MACS + 1)
    if op == "sepconv":
        n, k, h, w = named["vertical"].shape
        return n * x.shape[1] * h * w * k * k
    raise VfikitError(f"no MAC formula for op {op!r}")


@contextlib.contextmanager
def count_macs(model: nn.Module) -> Iterator[MacCounter]:
    """Context manager counting the MACs of forwards run inside it (convs, linears, sampling ops).

    The sampling ops are seen through the argument check every public op in
    :mod:`vfikit.ops.functional` performs once per call (``check_tensors(op, tensors)``).
    """
    from vfikit.ops import functional

    counter = MacCounter()

    def conv_hook(mod: nn.Module, inputs, output) -> None:
        kh, kw = mod.kernel_size
        if isinstance(mod, nn.ConvTranspose2d):
            counter.add("conv", inputs[0].numel() * (mod.out_channels // mod.groups) * kh * kw)
        else:
            counter.add("conv", output.numel() * (mod.in_channels // mod.groups) * kh * kw)

    def linear_hook(mod: nn.Linear, inputs, output) -> None:
        counter.add("linear", output.numel() * mod.in_features)

    handles = []
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    original = functional.check_tensors

    def checking(op: str, named: dict[str, torch.Tensor]) -> None:
        original(op, named)
        counter.add(op, _op_macs(op, named))

    functional.check_tensors = checking
    try:
        yield counter
    finally:
        functional.check_tensors = original
        for h in handles:
            h.remove()


def bench_frames(width: int, height: int, device: torch.device, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A deterministic smooth textured pair (1, 3, H, W): frame1 is frame0 moved 2 px right, 1 px down."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, max(2, height // 8 + 2), max(2, width // 8 + 2), generator=g)
    big = torch.nn.functional.interpolate(coarse, size=(height + 4, width + 4), mode="bilinear", align_corners=False)
    frame0 = big[..., 2:2 + height, 2:2 + width].contiguous()
    frame1 = big[..., 1:1 + height, 0:width].contiguous()
    return frame0.to(device), frame1.to(device)


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default) of sorted values, q in [0, 1]."""
    if not sorted_values:
        return math.nan
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def time_calls(fn: Callable[[], Any], settings: BenchSettings, sync: Callable[[], None] = lambda: None) -> dict:
    """Run ``fn`` ``settings.warmup`` times untimed, then timed; median, quartiles and IQR in seconds."""
    for _ in range(settings.warmup):
        fn()
    sync()
    times: list[float] = []
    spent = 0.0
    while len(times) < settings.repeats and (len(times) < settings.min_repeats or spent < settings.max_seconds):
        start = time.perf_counter()
        fn()
        sync()
        dt = time.perf_counter() - start
        times.append(dt)
        spent += dt
    s = sorted(times)
    q25, med, q75 = _percentile(s, 0.25), _percentile(s, 0.5), _percentile(s, 0.75)
    return {"median_s": med, "q25_s": q25, "q75_s": q75, "iqr_s": q75 - q25, "runs": len(times), "times_s": times}


def _rss_peak_mb() -> float:
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def run_case(case: BenchCase, settings: BenchSettings) -> dict[str, Any]:
    """Measure one case in this process (see :func:`run_case_isolated` for the fresh-process version)."""
    from vfikit.hub import create_model
    from vfikit.models.catalog import get_entry

    device = resolve_device(case.device)
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
        with contextlib.suppress(ImportError):  # OpenCV is a core dependency; only flow_dis uses it
            import cv2

            cv2.setNumThreads(settings.threads)
    model = create_model(case.model, weights=case.weights, **case.model_args).to(device).eval()
    entry = get_entry(case.model)
    frame0, frame1 = bench_frames(case.width, case.height, device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    result: dict[str, Any] = {**asdict(case), "params": count_parameters(model), "family": entry.family,
                              "uncounted": getattr(model, "uncounted_work", None)}
    with torch.inference_mode():
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
        else:
            base = None
            rss_before = _rss_peak_mb()
        with count_macs(model) as counter:
            model(frame0, frame1)
        result["macs"] = counter.total
        result["macs_by_kind"] = dict(counter.by_kind)
        result["precision"] = precision = resolve_precision(settings.precision, device, model)
        dtype = precision_dtype(precision)

        def call():
            with torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext():
                return model(frame0, frame1)

        timing = time_calls(call, settings, sync)
        if device.type == "cuda":
            result["peak_memory_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
            result["peak_memory_delta_mb"] = (torch.cuda.max_memory_allocated(device) - base) / 2**20
            result["memory_measure"] = "torch.cuda.max_memory_allocated"
        else:
            peak = _rss_peak_mb()
            result["peak_memory_mb"] = peak
            result["peak_memory_delta_mb"] = peak - rss_before
            result["memory_measure"] = "ru_maxrss of the process (delta: above the level before the first forward)"
    result.update(timing)
    result["fps"] = 1.0 / timing["median_s"] if timing["median_s"] > 0 else math.inf
    result["threads"] = torch.get_num_threads()
    with contextlib.suppress(OSError, AttributeError):
        result["load_avg_1m"] = round(os.getloadavg()[0], 2)  # other work on the machine skews CPU timings
    return result


def run_case_isolated(case: BenchCase, settings: BenchSettings) -> dict[str, Any]:
    """Measure one case in a fresh ``python -m vfikit.bench`` subprocess; errors become an ``error`` field."""
    payload = json.dumps({"case": asdict(case), "settings": asdict(settings)})
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "vfikit.bench", payload],
            capture_output=True, text=True, timeout=settings.timeout, env=os.environ.copy(), check=False,
        )
    except subprocess.TimeoutExpired:
        return {**asdict(case), "error": f"timed out after {settings.timeout:.0f} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {**asdict(case), "error": f"exit {proc.returncode}: {tail}"}
    return json.loads(lines[-1])


def machine_info() -> dict[str, Any]:
    """CPU / GPU / library versions recorded next to the numbers."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    info: dict[str, Any] = {
        "cpu": cpu, "logical_cpus": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
        "platform": platform.platform(), "torch_threads": torch.get_num_threads(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    with contextlib.suppress(OSError, AttributeError):  # not available on every platform
        info["load_avg_1m"] = round(os.getloadavg()[0], 2)
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def run_bench(
    cases: Sequence[BenchCase],
    settings: BenchSettings = BenchSettings(),
    *,
    isolate: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Measure every case; returns ``{"machine", "settings", "results"}`` (one result dict per case)."""
    results = []
    for i, case in enumerate(cases):
        if progress:
            progress(f"[{i + 1}/{len(cases)}] {case.model} {case.width}x{case.height} {case.device}")
        if isolate:
            results.append(run_case_isolated(case, settings))
        else:
            try:
                results.append(run_case(case, settings))
            except (VfikitError, RuntimeError, MemoryError) as exc:  # e.g. CUDA out of memory: keep the others
                results.append({**asdict(case), "error": f"{type(exc).__name__}: {exc}"})
    return {"machine": machine_info(), "settings": asdict(settings), "isolated": isolate, "results": results}


def _fmt_int(n: int | None) -> str:
    if n is None:
        return "-"
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.2f}{unit}"
    return str(n)


def _fmt_ms(seconds: float) -> str:
    ms = seconds * 1e3
    return f"{ms:.0f}" if ms >= 100 else f"{ms:.1f}" if ms >= 1 else f"{ms:.3f}"


def _fmt_fps(fps: float) -> str:
    return f"{fps:.0f}" if fps >= 100 else f"{fps:.3g}"


def to_markdown(bench: dict[str, Any]) -> str:
    """A markdown report: machine, settings and one row per case."""
    m, s = bench["machine"], bench["settings"]
    lines = [
        f"Machine: {m['cpu']} ({m['logical_cpus']} logical CPUs)" + (f", GPU {m['gpu']}" if m.get("gpu") else "")
        + f"; torch {m['torch']}; {m['date']}"
        + (f"; load average {m['load_avg_1m']} at the end" if "load_avg_1m" in m else ""),
        f"Settings: warm-up {s['warmup']}, up to {s['repeats']} timed runs (at least {s['min_repeats']}, "
        f"stopping after {s['max_seconds']:g} s), batch 1, "
        + ("each case in a fresh process." if bench.get("isolated") else "all cases in one process."),
        "",
        "| model | device | size | params | MACs | median ms | IQR ms | frames/s | peak MB (+fwd) | threads | load |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    notes = {}
    for r in bench["results"]:
        size = f"{r['width']}x{r['height']}"
        if "error" in r:
            lines.append(f"| {r['model']} | {r['device']} | {size} | | | error: {r['error']} | | | | | |")
            continue
        macs = _fmt_int(r["macs"])
        if r.get("uncounted"):
            notes[r["model"]] = r["uncounted"]
            macs += "*"
        device = r["device"] if r.get("precision", "fp32") == "fp32" else f"{r['device']} ({r['precision']})"
        lines.append(
            f"| {r['model']} | {device} | {size} | {_fmt_int(r['params'])} | {macs} | "
            f"{_fmt_ms(r['median_s'])} | {_fmt_ms(r['iqr_s'])} | {_fmt_fps(r['fps'])} | "
            f"{r['peak_memory_mb']:.0f} (+{r['peak_memory_delta_mb']:.0f}) | {r['threads']} | "
            f"{r.get('load_avg_1m', '-')} |"
        )
    for model, note in notes.items():
        lines.append(f"\n\\* {model}: MACs exclude {note}.")
    lines.append("\nMACs: convolutions + sampling ops at batch 1 (see vfikit.bench). Peak MB: CPU resident-set "
                 "high-water of the case's process (in brackets: the increase during the forwards); CUDA: "
                 "max_memory_allocated. Load: the machine's 1-minute load average after the case (CPU timings "
                 "are only comparable at similar load). A precision after the device: the calls ran under "
                 "autocast in it (fp32 otherwise).")
    return "\n".join(lines) + "\n"


def _worker(payload: str) -> int:
    spec = json.loads(payload)
    case = BenchCase(**spec["case"])
    settings = BenchSettings(**spec["settings"])
    result = run_case(case, settings)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m vfikit.bench '<json case>' (internal worker of `vfikit bench`)")
    raise SystemExit(_worker(sys.argv[1]))
