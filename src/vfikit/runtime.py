"""Small runtime services shared by every layer: devices, precisions, frame checks, safe ``torch.load``,
atomic writes, checksums, parameter counts, the package's weights folder.

Nothing here knows about models, the registry or video; everything may import it. torch is imported
where it is used, so that the command line's help does not load it.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vfikit.errors import VfikitError, VfikitTypeError

if TYPE_CHECKING:
    import torch
    from torch import nn


PRECISIONS = ("fp32", "fp16", "bf16")
PRECISION_CHOICES = ("auto", *PRECISIONS)  # what every command's --precision accepts
DEFAULT_PRECISION = "fp32"  # the library's (Interpolator, evaluate, bench): exact float32 numbers; the video
# tool's own default is "auto" (video/options.py), for speed where bfloat16 is measured to be safe


def precision_dtype(precision: str) -> torch.dtype | None:
    """``"fp32"`` -> None (no autocast), ``"fp16"`` -> float16, ``"bf16"`` -> bfloat16 (a checked precision,
    ``"auto"`` resolved first by :func:`resolve_precision`)."""
    import torch

    return {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}[check_precision(precision, None)]


def check_precision(precision: str, device: str | torch.device | None) -> str:
    """The one check of a precision name (:data:`PRECISION_CHOICES`) and of what the device can run: fp16
    needs a GPU (on CPU it is slow and inexact). ``device`` None checks the name only."""
    if precision not in PRECISION_CHOICES:
        raise VfikitError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISION_CHOICES)}")
    if precision == "fp16" and device is not None and str(device).startswith("cpu"):
        raise VfikitError("--fp16 needs a GPU (half precision on CPU is slow and inexact); use --bf16 or no flag")
    return precision


ENV_CACHE = "VFIKIT_CACHE_DIR"
BF16_GAIN = 1.05  # bfloat16 is chosen where it runs the probe at least 5% faster than float32


def cache_dir() -> Path:
    """vfikit's cache (downloaded weights, this machine's measured precision): ``$VFIKIT_CACHE_DIR`` or
    ``$XDG_CACHE_HOME/vfikit`` (``~/.cache/vfikit``)."""
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vfikit"


def time_cpu_precisions(rounds: int = 3) -> dict[str, float]:
    """Seconds of a network-like probe (four 3x3 convolutions of 48 channels on a 120x160 map, channels-last,
    as the guided models' U-Net runs at 640x480) in float32 and under bfloat16 autocast: the best of
    ``rounds`` interleaved rounds after one warm-up each, on this CPU with torch's current threads."""
    import time

    import torch

    gen = torch.Generator().manual_seed(0)
    convs = [torch.nn.Conv2d(48, 48, 3, padding=1) for _ in range(4)]
    x = torch.rand(1, 48, 120, 160, generator=gen).contiguous(memory_format=torch.channels_last)

    def run(bf16: bool) -> float:
        start = time.perf_counter()
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            y = x
            for conv in convs:
                y = torch.relu(conv(y))
        return time.perf_counter() - start

    best = {"fp32": math.inf, "bf16": math.inf}
    for name in best:
        run(name == "bf16")  # warm-up (first-call allocation and kernel selection)
    for _ in range(rounds):
        for name in best:
            best[name] = min(best[name], run(name == "bf16"))
    return best


@functools.cache
def _cpuinfo() -> str:
    """The processor's model name and flags lines (Linux's /proc/cpuinfo; elsewhere the platform's name)."""
    import platform

    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            return "".join(line for line in fh if line.startswith(("model name", "flags")))
    except OSError:
        return platform.processor()


def processor_digest() -> str:
    """A short hash of the processor's model and flags (read once per process)."""
    import platform

    return f"{platform.machine()} {hashlib.sha256(_cpuinfo().encode()).hexdigest()[:16]}"


def has_native_bf16() -> bool:
    """Whether the processor lists bfloat16 instructions (AVX512-BF16 or AMX-BF16; Linux only, else False).
    A hint for guesses made without torch, never the precision choice (:func:`cpu_bf16_faster` measures)."""
    flags = set(_cpuinfo().split())
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def _cpu_identity() -> str:
    """What decides this CPU's speed in each precision: torch's version and threads and the processor's
    model and flags (a measurement is redone when any of them changes)."""
    import torch

    return f"torch {torch.__version__}, {torch.get_num_threads()} threads, {_processor_part()}"


def _processor_part() -> str:
    """The processor's part of :func:`_cpu_identity` (read without torch by :func:`recorded_bf16_faster`)."""
    return f"cpu {processor_digest()}"


_MEASURED: dict[str, bool] = {}
PRECISION_CACHE = "cpu_precision.json"  # in cache_dir(): {cpu identity: {"bf16_faster": bool, times}}


def _precision_records() -> dict[str, Any]:
    import json

    try:
        known = json.loads((cache_dir() / PRECISION_CACHE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return known if isinstance(known, dict) else {}


def recorded_bf16_faster() -> bool | None:
    """What :func:`cpu_bf16_faster` measured on this processor before (with any torch version and threads),
    read without importing torch; None where nothing, or disagreeing results, are recorded."""
    mine = _processor_part()
    seen = {v.get("bf16_faster") for k, v in _precision_records().items() if k.endswith(mine) and isinstance(v, dict)}
    return seen.pop() if len(seen) == 1 and seen <= {True, False} else None


def cpu_bf16_faster() -> bool:
    """True where bfloat16 runs the network-like probe of :func:`time_cpu_precisions` at least ``BF16_GAIN``
    times faster than float32 on this CPU: the choice of precision ``auto``, by measurement, not by the CPU's
    name. Measured once per machine (about 0.2 s) and kept in ``cache_dir()/cpu_precision.json`` under the
    CPU's identity (:func:`_cpu_identity`); a cache that cannot be read or written only means measuring again."""
    import json

    key = _cpu_identity()
    if key in _MEASURED:
        return _MEASURED[key]
    path = cache_dir() / PRECISION_CACHE
    known = _precision_records()
    entry = known.get(key)
    if not (isinstance(entry, dict) and isinstance(entry.get("bf16_faster"), bool)):
        times = time_cpu_precisions()
        entry = {"bf16_faster": times["fp32"] >= BF16_GAIN * times["bf16"], **{f"{k}_s": v for k, v in times.items()}}
        known[key] = entry
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(path, json.dumps(known, indent=1, sort_keys=True))
        except OSError:
            pass  # a read-only home: the choice holds for this process
    _MEASURED[key] = entry["bf16_faster"]
    return _MEASURED[key]


def resolve_precision(precision: str, device: torch.device, model: Any) -> str:
    """The precision a model runs at. ``"auto"``: ``"bf16"`` for a model that declares ``cpu_bf16`` (its
    bfloat16 error is measured and small: docs/benchmarks.md) on a CPU where bfloat16 is measured faster
    (:func:`cpu_bf16_faster`), otherwise ``"fp32"``. Any other name is checked and returned as it is."""
    if check_precision(precision, device) != "auto":
        return precision
    if device.type == "cpu" and getattr(model, "cpu_bf16", False) and cpu_bf16_faster():
        return "bf16"
    return "fp32"


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"`` or None -> CUDA when available (``cuda:LOCAL_RANK`` under torchrun), else CPU.

    A named device must exist and be usable here; VfikitError otherwise.
    """
    import torch

    if device is None or device == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        rank = os.environ.get("LOCAL_RANK")
        return torch.device(f"cuda:{int(rank)}" if rank is not None else "cuda")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise VfikitError(f"unknown device {device!r}: use cpu, cuda, cuda:N, mps or auto") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise VfikitError(f"device {str(device)!r} was asked for but CUDA is not available here")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise VfikitError(f"device {str(device)!r} was asked for but MPS is not available here")
    return dev


@contextmanager
def settled_imports() -> Iterator[None]:
    """Run a block of heavy imports (torch, OpenCV, ...) without the cyclic garbage collector, then freeze
    what exists (``gc.freeze``) and restore the collector as it was.

    What an import creates lives as long as the process, yet Python runs full collections over it while it
    grows: in a warm ``vfikit interpolate`` of an image pair, three while torch is imported and one when numba
    loads its kernels, 0.02-0.12 s each, freeing nothing. Inside this block there are none, and the one left
    later skips the frozen objects (0.026 s instead of 0.118 s): a short job ends about 0.3 s sooner on the dev
    CPU (docs/benchmarks.md). Objects alive at the freeze are never collected afterwards, which is why only the
    command line's jobs use this, right at their start."""
    import gc

    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


@contextmanager
def atomic_path(path: str | os.PathLike, *, durable: bool = False) -> Iterator[Path]:
    """A temporary name beside ``path`` to write to; it replaces ``path`` in one step when the block ends.

    Readers never see a half-written file, and a failed write leaves ``path`` as it was (the temporary
    file is removed). The name keeps ``path``'s suffix, for writers that choose the format by it.
    ``durable``: flush the file to disk before the rename (for files that resuming relies on).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        yield tmp
        if durable:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | os.PathLike, text: str, *, durable: bool = False) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through :func:`atomic_path`."""
    with atomic_path(path, durable=durable) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    return Path(path)


_SHAPES = {3: "(3, H, W)", 4: "(B, 3, H, W)"}


def check_frame(frame: Any, name: str, *, dims: tuple[int, ...] = (4,),
                range_tolerance: float | None = None) -> torch.Tensor:
    """One RGB frame as vfikit takes it: a floating ``torch.Tensor`` of shape (B, 3, H, W) (``dims``
    says which of 4 and 3 dimensions are accepted); returns it.

    With ``range_tolerance``, its values must also be finite and within [0, 1] give or take that much
    (8-bit values are named as such). VfikitTypeError for a wrong type or dtype, VfikitError otherwise.
    """
    import torch

    if not isinstance(frame, torch.Tensor):
        raise VfikitTypeError(f"{name} must be a torch.Tensor, got {type(frame).__name__}")
    if frame.dim() not in dims or frame.shape[-3] != 3:
        shapes = " or ".join(_SHAPES[d] for d in dims)
        raise VfikitError(f"{name} must have shape {shapes}, got {tuple(frame.shape)}")
    if not frame.is_floating_point():
        raise VfikitTypeError(f"{name} must be a floating tensor in [0, 1], got dtype {frame.dtype}")
    if range_tolerance is not None:
        if frame.numel() == 0:
            raise VfikitError(f"{name} is empty (shape {tuple(frame.shape)})")
        lo, hi = (float(v) for v in torch.aminmax(frame.detach()))
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise VfikitError(f"{name} holds NaN or infinite values; frames must be finite floats in [0, 1]")
        if lo < -range_tolerance or hi > 1 + range_tolerance:
            hint = " (8-bit values? divide by 255)" if hi > 2 else ""
            raise VfikitError(f"{name} has values from {lo:.4g} to {hi:.4g}; frames must be floats in [0, 1]{hint}")
    return frame


def check_int(value: Any, name: str, *, low: int | None = None, high: int | None = None) -> int:
    """``value`` as it is when it is an integer (not a bool) in ``[low, high]`` (either bound optional);
    otherwise a :class:`VfikitError` naming ``name`` and the range: the one argument check of an integer."""
    if isinstance(value, bool) or not isinstance(value, int) or (low is not None and value < low) \
            or (high is not None and value > high):
        if low is not None and high is not None:
            wanted = f"an integer from {low} to {high}"
        elif low is not None:
            wanted = {0: "a non-negative integer", 1: "a positive integer"}.get(low, f"an integer >= {low}")
        else:
            wanted = "an integer" if high is None else f"an integer <= {high}"
        raise VfikitError(f"{name} must be {wanted}, got {value!r}")
    return value


def count_non_finite(obj: Any) -> int:
    """NaN and infinite values in every floating tensor of a nested dict/list/tuple (a state dict, an
    optimizer state)."""
    import torch

    if isinstance(obj, torch.Tensor):
        return int((~torch.isfinite(obj)).sum()) if obj.is_floating_point() or obj.is_complex() else 0
    if isinstance(obj, dict):
        return sum(count_non_finite(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(count_non_finite(v) for v in obj)
    return 0


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def count_parameters(model: nn.Module) -> int:
    """Number of parameter values (shared tensors counted once)."""
    seen, total = set(), 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total


def packaged_weights(filename: str) -> Path | None:
    """Path of a weights file shipped in ``vfikit/weights/``, or None when this installation lacks it."""
    path = Path(str(resources.files("vfikit") / "weights" / filename))
    return path if path.is_file() else None


def is_torch_save(path: str | os.PathLike) -> bool:
    """True when ``path`` starts as a ``torch.save`` file does (a zip archive, or a pickle before torch 1.6)."""
    with open(path, "rb") as f:
        head = f.read(4)
    return head == b"PK\x03\x04" or head[:1] == b"\x80"


def torch_load(path: str | os.PathLike, what: str = "PyTorch weights", map_location: Any = "cpu") -> Any:
    """``torch.load(weights_only=True)`` with one-line errors (torch's own are long and cryptic).

    ``what`` names the file in messages (``"PyTorch weights"``, ``"LPIPS weights"``...). A file that
    holds Python objects besides tensors is refused: unpickling them could run code.
    """
    path = Path(path)
    if not path.is_file():
        raise VfikitError(f"{what} file not found: {path}")
    if not is_torch_save(path):
        raise VfikitError(f"cannot read {path} as {what}: it is not a torch.save file")
    import torch

    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # pickle/zip errors have many types; all mean "cannot read this safely"
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
        if "Weights only load failed" in text:  # the unpickler met a global, a class or a call it refuses
            named = re.search(r"GLOBAL ([\w.]+)|got <class '([\w.]+)'>|unrecognized function ([\w.]+)", text)
            what_objects = next((g for g in named.groups() if g), "") if named else ""
            raise VfikitError(f"{path} holds Python objects{f' ({what_objects})' if what_objects else ''} besides "
                              "tensors, which vfikit does not load (unpickling them could run code): "
                              "save only the state dict") from None
        first = next((line.strip() for line in text.splitlines() if line.strip()), type(exc).__name__)
        first = first if len(first) <= 160 else first[:157] + "..."
        raise VfikitError(f"cannot read {path} as {what} (damaged or not a checkpoint): {first}") from None
