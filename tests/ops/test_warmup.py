"""Compiling ahead and in the background (``vfikit.ops.warmup``): the kernels and signatures it compiles are
exactly those the default model then calls; the background helper imports no torch, fills the cache for the
dtype the job tells it, records that, and never stands in the job's way when it fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vfikit import runtime
from vfikit.hub import create_model
from vfikit.inference import Interpolator
from vfikit.ops import numba_cpu, splat, synthesis_kernels, warmup

ROOT = Path(__file__).resolve().parents[2]


def _signatures() -> dict[str, set]:
    kernels = {"consistency": splat._consistency_loop, "splat_motion": splat._splat_motion_loop,
               "deform_fwd": numba_cpu._deform_fwd, "guided_rows": synthesis_kernels.guided_rows}
    return {name: set(kernel.signatures) for name, kernel in kernels.items()}


def _default_frame(precision: str) -> torch.Tensor:
    model = create_model("guided_adacof_k5_fast").eval()
    ip = Interpolator(model, device="cpu", precision=precision, allow_untrained=True)
    frame0, frame1 = torch.rand(1, 3, 70, 90), torch.rand(1, 3, 70, 90)
    return ip(frame0, frame1)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_warmup_covers_every_kernel_signature_of_the_default(precision):
    warmup.compile_guide_kernels()
    warmup.compile_synthesis(bf16_heads=precision == "bf16")  # numpy arrays only, as the helper calls it
    before = _signatures()
    _default_frame(precision)
    after = _signatures()
    assert all(after[name] == before[name] for name in before), {n: after[n] - before[n] for n in before}


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba"), "VFIKIT_CACHE_DIR": str(tmp_path / "vfikit"),
            "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}


def test_the_helpers_code_imports_no_torch(tmp_path):
    code = ("import sys; from vfikit.ops import synthesis_kernels, warmup; "
            "warmup.compile_synthesis(False); warmup._likely_heads('auto'); print(sorted(sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(tmp_path),
                          timeout=300)
    assert done.returncode == 0, done.stderr
    modules = eval(done.stdout.strip().splitlines()[-1])
    assert "numba" in modules and "torch" not in modules


@pytest.fixture
def fresh_caches(tmp_path, monkeypatch):
    for name, value in _env(tmp_path).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(warmup, "_HELPER", {})
    yield tmp_path
    proc = warmup._HELPER.get("proc")
    warmup.choose_synthesis_heads(None)  # a helper left running stops (after any guess it is compiling)
    if proc is not None:
        proc.wait(timeout=300)


def test_background_helper_fills_the_cache_for_the_told_dtype_and_records_it(fresh_caches):
    assert warmup.start_background_compile("fp32")
    assert not warmup.start_background_compile("fp32")  # one helper per process
    warmup.choose_synthesis_heads(False)
    warmup.wait_background_compile(False)
    assert warmup._HELPER == {}
    assert warmup._marker_key("fp32") in json.loads((fresh_caches / "vfikit" / warmup.MARKERS).read_text())
    # a new process (another job) finds the loop in the cache: it loads, it does not compile
    code = ("from vfikit.ops import synthesis_kernels, warmup; warmup.compile_synthesis(False); "
            "s = synthesis_kernels.guided_rows.stats; print(sum(s.cache_hits.values()), sum(s.cache_misses.values()))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(fresh_caches),
                          timeout=300)
    assert done.returncode == 0, done.stderr
    hits, misses = done.stdout.split()[-2:]
    assert (int(hits), int(misses)) == (1, 0)
    # the marker: the next job with the same request starts no helper; another request does
    assert not warmup.start_background_compile("fp32")
    assert warmup.start_background_compile("bf16")


def test_a_helper_that_dies_leaves_the_job_to_compile(fresh_caches):
    assert warmup.start_background_compile("auto")
    proc = warmup._HELPER["proc"]
    proc.kill()
    proc.wait()
    out = _default_frame("fp32")  # tells a dead helper and waits for it: neither may fail
    assert out.shape == (1, 3, 70, 90) and torch.isfinite(out).all()
    assert warmup._HELPER == {}
    assert not (fresh_caches / "vfikit" / warmup.MARKERS).exists()


def test_a_helper_told_nothing_to_compile_stops(fresh_caches):
    assert warmup.start_background_compile("auto")
    proc = warmup._HELPER["proc"]
    warmup.choose_synthesis_heads(None)
    assert proc.wait(timeout=300) == 0
    assert not (fresh_caches / "vfikit" / warmup.MARKERS).exists()
    warmup.choose_synthesis_heads(True)  # only the first word counts: nothing is written to the closed pipe
    warmup.wait_background_compile(True)  # a later fused call finds the helper gone and goes on
    assert warmup._HELPER == {}


def test_the_helpers_guess_of_the_dtype(monkeypatch):
    assert warmup._likely_heads("fp32") is False and warmup._likely_heads("bf16") is True
    assert warmup._likely_heads("fp16") is None
    for recorded, native, expected in ((True, False, True), (False, True, False), (None, True, True),
                                       (None, False, False)):
        monkeypatch.setattr(runtime, "recorded_bf16_faster", lambda recorded=recorded: recorded)
        monkeypatch.setattr(runtime, "has_native_bf16", lambda native=native: native)
        assert warmup._likely_heads("auto") is expected


def test_recorded_bf16_faster_reads_this_processors_measurements(tmp_path, monkeypatch):
    monkeypatch.setenv("VFIKIT_CACHE_DIR", str(tmp_path))
    assert runtime.recorded_bf16_faster() is None
    mine, other = runtime._processor_part(), "cpu x86_64 0000000000000000"

    def record(entries: dict) -> bool | None:
        (tmp_path / runtime.PRECISION_CACHE).write_text(json.dumps(entries))
        return runtime.recorded_bf16_faster()

    assert record({f"torch 2.3, 2 threads, {mine}": {"bf16_faster": True}}) is True
    assert record({f"torch 2.3, 2 threads, {mine}": {"bf16_faster": False},
                   f"torch 2.3, 2 threads, {other}": {"bf16_faster": True}}) is False
    assert record({f"torch 2.3, 2 threads, {mine}": {"bf16_faster": False},
                   f"torch 2.4, 4 threads, {mine}": {"bf16_faster": True}}) is None
    assert record({f"torch 2.3, 2 threads, {other}": {"bf16_faster": True}}) is None
