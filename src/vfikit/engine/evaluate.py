"""Benchmark evaluation: run a model over a dataset of Triplets and score it (docs/evaluation.md).

``evaluate(model, dataset)`` returns an :class:`EvalReport` with one row per sample (key, t,
metrics, seconds) and a summary (means, timing, device, protocol). :func:`write_report` writes
``per_sample.csv`` and ``summary.json``; ``vfikit eval`` is the command-line shell around both.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import math
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vfikit import __version__
from vfikit.errors import VfikitError, VfikitTypeError
from vfikit.image_files import IMAGE_SUFFIXES, write_image
from vfikit.metrics import HIGHER_IS_BETTER, LPIPS, PROTOCOL, compute_metrics
from vfikit.runtime import DEFAULT_PRECISION, atomic_path, resolve_device, resolve_precision, write_text_atomic

Predictor = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]


def device_description(device: torch.device) -> dict[str, Any]:
    """What the summary records about where the model ran."""
    info: dict[str, Any] = {"device": str(device), "torch": torch.__version__}
    if device.type == "cuda":
        info["name"] = torch.cuda.get_device_name(device)
    else:
        info["name"] = platform.processor() or platform.machine()
        info["threads"] = torch.get_num_threads()
    return info


def make_predictor(model: nn.Module | Callable[..., torch.Tensor], device: torch.device,
                   precision: str = DEFAULT_PRECISION) -> Predictor:
    """A function ``(frame0, frame1, t) -> frame_t`` on (3, H, W) tensors in [0, 1].

    An ``nn.Module`` following the VFIModel contract runs through ``vfikit.inference.Interpolator`` on
    ``device`` (whole frames, at ``precision`` (fp32 by default), inference mode; the output is clamped to
    [0, 1], which the uint8 quantisation of the protocol does anyway); models without ``arbitrary_t`` only
    serve t = 0.5.
    Any other callable (e.g. a configured Interpolator) is called as ``fn(frame0[None], frame1[None], t)``.
    """
    if isinstance(model, nn.Module):
        from vfikit.inference import Interpolator

        # the library call scores any model (training validates models that live only in memory);
        # `vfikit eval` refuses untrained networks itself
        interp = Interpolator(model, device=device, precision=precision, allow_untrained=True)

        def predict(frame0: torch.Tensor, frame1: torch.Tensor, t: float) -> torch.Tensor:
            if not interp.arbitrary_t and abs(t - 0.5) > 1e-9:
                raise VfikitError(
                    f"model {type(model).__name__} only computes t = 0.5, but the dataset asks for t = {t}"
                )
            return interp(frame0, frame1, t)

        return predict
    if callable(model):

        def predict_fn(frame0: torch.Tensor, frame1: torch.Tensor, t: float) -> torch.Tensor:
            with torch.inference_mode():
                out = model(frame0[None].to(device), frame1[None].to(device), t)
            return out[0] if out.dim() == 4 else out

        return predict_fn
    raise VfikitTypeError(f"evaluate needs an nn.Module or a callable, got {type(model).__name__}")


@dataclass
class EvalReport:
    """Per-sample rows and a summary; ``table()`` formats them for a terminal."""

    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    metrics: tuple[str, ...] = field(default=("psnr", "ssim", "ie"))

    def table(self, max_rows: int = 30) -> str:
        """Per-sample lines (when at most ``max_rows``) and the mean."""
        names = list(self.metrics)
        width = max([len("mean")] + [len(str(r["key"])) for r in self.rows]) + 2
        fmt = {"psnr": "{:>9.3f}", "ssim": "{:>8.4f}", "ie": "{:>7.3f}", "lpips": "{:>8.4f}", "lpips_cdfi": "{:>10.4f}"}
        head = "sample".ljust(width) + "".join(f"{n:>{len(fmt[n].format(0.0))}}" for n in names) + f"{'s/frame':>9}"
        out = [head, "-" * len(head)]
        if len(self.rows) <= max_rows:
            for r in self.rows:
                out.append(str(r["key"]).ljust(width) + "".join(fmt[n].format(r[n]) for n in names)
                           + f"{r['seconds']:>9.3f}")
            out.append("-" * len(head))
        means = self.summary["metrics"]
        out.append("mean".ljust(width) + "".join(fmt[n].format(means[n]) for n in names)
                   + f"{self.summary['seconds_per_frame']['mean']:>9.3f}")
        return "\n".join(out)


def _mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values)) if values else math.nan


def _output_path(directory: Path, key: str, index: int) -> Path:
    safe = key.replace("\\", "/").strip("/") or f"{index:06d}"
    if any(part in ("..", ".", "") for part in safe.split("/")):
        safe = f"{index:06d}"
    stem = Path(safe)
    if stem.suffix.lower() in IMAGE_SUFFIXES:  # SNU-FILM keys are image paths
        stem = stem.with_suffix("")
    return directory / f"{stem.as_posix()}.png"


def write_image_atomic(path: Path, image: torch.Tensor) -> None:
    """Write a (3, H, W) image in [0, 1] to ``path`` via a temporary file (the format from the suffix)."""
    with atomic_path(path) as tmp:
        write_image(tmp, image)


def evaluate(
    model: nn.Module | Callable[..., torch.Tensor],
    dataset: Sequence,
    *,
    metrics: Sequence[str] = ("psnr", "ssim", "ie"),
    device: str | torch.device | None = None,
    limit: int | None = None,
    save_outputs: str | Path | None = None,
    lpips: LPIPS | None = None,
    progress: bool = True,
    info: dict[str, Any] | None = None,
    precision: str = DEFAULT_PRECISION,
) -> EvalReport:
    """Score ``model`` on ``dataset`` (anything with ``len()`` and indexing that yields Triplets).

    Args:
        model: a VFIModel (run through an ``Interpolator``, see :func:`make_predictor`) or a callable
            ``fn(frame0, frame1, t)`` on (1, 3, H, W).
        metrics: names from :data:`vfikit.metrics.METRICS`; ``lpips``/``lpips_cdfi`` need ``lpips``.
        device: where the model runs (``"auto"``/None: cuda when available).
        limit: evaluate only the first N samples.
        save_outputs: directory receiving each prediction as ``<key>.png`` (8-bit, round half up).
        info: extra fields for the summary (model name, weights, ...).
        precision: ``"fp32"`` (default: the protocol's numbers), ``"bf16"``, ``"fp16"`` or ``"auto"``, as
            ``vfikit interpolate`` runs (:class:`vfikit.inference.Interpolator`); the summary records it.
    Returns:
        EvalReport: rows ``{"key", "t", <metric>..., "seconds"}`` (seconds: model time for that frame,
        device-synchronised) and a summary with the mean of every metric.
    """
    metrics = tuple(metrics)
    if not metrics:
        raise VfikitError("evaluate needs at least one metric")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise VfikitError(f"limit must be a positive integer, got {limit!r}")
    dev = resolve_device(device)
    if lpips is not None:
        lpips = lpips.to(dev)
    if isinstance(model, nn.Module):  # "auto" resolved once, as the Interpolator does: the summary records it
        precision = resolve_precision(precision, dev, model)
    predict = make_predictor(model, dev, precision)
    n = len(dataset) if limit is None else min(limit, len(dataset))
    out_dir = Path(save_outputs) if save_outputs is not None else None
    rows: list[dict[str, Any]] = []
    from tqdm import tqdm

    interval = 0.1 if sys.stderr.isatty() else 30.0  # in a log file every refresh is a new line
    bar = tqdm(total=n, desc=f"eval {getattr(dataset, 'name', 'dataset')}", unit="frame", disable=not progress,
               dynamic_ncols=True, mininterval=interval)
    try:
        for i in range(n):
            sample = dataset[i]
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            start = time.perf_counter()
            pred = predict(sample.frame0, sample.frame1, float(sample.t))
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            seconds = time.perf_counter() - start
            if pred.shape != sample.target.shape:
                raise VfikitError(
                    f"model output for {sample.key!r} has shape {tuple(pred.shape)}, "
                    f"target {tuple(sample.target.shape)}"
                )
            pred = pred.float().cpu()
            row: dict[str, Any] = {"key": sample.key or str(i), "t": float(sample.t)}
            row.update(compute_metrics(pred, sample.target, metrics, lpips=lpips))
            row["seconds"] = seconds
            rows.append(row)
            if out_dir is not None:
                write_image_atomic(_output_path(out_dir, row["key"], i), pred.clamp(0, 1))
            bar.update(1)
            if "psnr" in row:
                bar.set_postfix(psnr=f"{_mean([r['psnr'] for r in rows]):.2f}")
    finally:
        bar.close()
    times = [r["seconds"] for r in rows]
    summary: dict[str, Any] = {
        "vfikit_version": __version__,
        **(info or {}),
        "dataset": {**(dataset.describe() if hasattr(dataset, "describe") else {"name": type(dataset).__name__}),
                    "evaluated": len(rows)},
        "protocol": {k: v for k, v in PROTOCOL.items()
                     if k in metrics or k in ("name", "quantization", "aggregate", "deterministic")},
        "metrics": {m: _mean([r[m] for r in rows]) for m in metrics},
        "higher_is_better": {m: HIGHER_IS_BETTER[m] for m in metrics},
        "seconds_per_frame": {"mean": _mean(times), "median": float(statistics.median(times)) if times else math.nan,
                              "note": "model call only (first frame includes warm-up), device-synchronised"},
        "device": {**device_description(dev), "precision": precision},
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    return EvalReport(rows, summary, metrics)


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)  # "inf" (identical images) / "nan": strict JSON has no infinities
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


REPORT_FILES = ("per_sample.csv", "summary.json")


def write_report(report: EvalReport, out_dir: str | Path, *, force: bool = False) -> list[Path]:
    """Write ``per_sample.csv`` and ``summary.json`` into ``out_dir``; existing files need ``force``."""
    out = Path(out_dir)
    paths = [out / name for name in REPORT_FILES]
    if not force:
        existing = [p for p in paths if p.exists()]
        if existing:
            raise VfikitError(f"{existing[0]} exists; pass --force (force=True) to overwrite")
    out.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    columns = ["key", "t", *report.metrics, "seconds"]
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for r in report.rows:
        writer.writerow({c: (repr(r[c]) if isinstance(r[c], float) else r[c]) for c in columns})
    write_text_atomic(paths[0], buf.getvalue())
    write_text_atomic(paths[1], json.dumps(_json_safe(report.summary), indent=2) + "\n")
    return paths
