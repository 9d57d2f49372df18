"""``vfikit compress``: pretrained model -> OBProxSG -> sparsity report -> compact model -> fine-tune -> table.

CDFI's compression-driven design (CVPR 2021) as one resumable pipeline over the training loop:

1. **sparsify**: fine-tune the pretrained model (``base``'s ``model.init``) with OBProxSG; EMA off
   (averaging would blur the exact zeros).
2. **report**: per-layer densities and the widths they imply (``report.json``, ``report.txt``).
3. **compact**: a channel spec (``channel_spec.json``) and the smaller model with the surviving
   weights (``compact.pt``); with ``strategy: group`` it computes exactly what the sparse model does.
4. **finetune**: train the compact model from those weights.
5. **evaluate**: parameters, MACs, CPU latency and peak memory (fresh process), validation PSNR and any
   configured benchmark, for the pretrained, sparse, compact and fine-tuned models (``summary.md``/``.json``).

Every stage writes its outputs under ``out_dir`` and a marker when complete; ``--resume`` skips
completed stages and continues an interrupted training stage.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from vfikit.errors import VfikitError

Log = Any


@dataclass
class StageConfig:
    """A training stage: ``steps``, and what it changes in the base config (``optim``/``schedule``
    entries, and more dotted ``set`` overrides such as ``train.ema_decay=null``)."""

    steps: int = 1000
    optim: dict[str, Any] = field(default_factory=dict)
    schedule: dict[str, Any] = field(default_factory=dict)
    set: list[str] = field(default_factory=list)


@dataclass
class BenchmarkEntry:
    """A benchmark to score every model on (``vfikit.data.benchmarks.open_benchmark``); with
    ``optional`` a missing root is skipped (noted in the summary) instead of failing."""

    name: str
    root: str
    split: str | None = None
    optional: bool = False
    limit: int | None = None


@dataclass
class EvalSection:
    latency_size: list[int] = field(default_factory=lambda: [1280, 720])
    latency_repeats: int = 3
    measure_latency: bool = True
    benchmarks: list[BenchmarkEntry] = field(default_factory=list)


@dataclass
class CompressConfig:
    """``base``: a training config or recipe giving the model (``model.init`` = pretrained weights), data,
    loss and run settings shared by the stages; ``set``: dotted overrides of ``base`` for every stage."""

    base: str
    out_dir: str = "runs/compress"
    set: list[str] = field(default_factory=list)
    sparsify: StageConfig = field(default_factory=lambda: StageConfig(
        steps=1000, optim={"name": "obproxsg", "lr": 1e-2, "lambda_": 1e-4, "n_p": 2, "epoch_size": 100,
                           "sparsity": "group"}, schedule={"name": "constant"}))
    strategy: Literal["group", "paper_min", "paper_max"] = "group"
    finetune: StageConfig = field(default_factory=lambda: StageConfig(steps=1000))
    eval: EvalSection = field(default_factory=EvalSection)


def load_compress_config(source: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> CompressConfig:
    """Read a compression config (YAML file or packaged recipe name) with dotted overrides."""
    from vfikit.config import apply_override, from_dict, read_raw

    raw = read_raw(source, kind="compress")
    for assignment in overrides:
        apply_override(raw, assignment)
    cfg = from_dict(CompressConfig, raw)  # checks strategy against its Literal
    if cfg.sparsify.optim.get("name", "obproxsg") != "obproxsg":
        raise VfikitError(f"sparsify.optim.name must be obproxsg, got {cfg.sparsify.optim.get('name')!r}")
    return cfg


def _stage_config(cfg: CompressConfig, stage: StageConfig, out_dir: Path, model_patch: dict | None = None):
    from vfikit.config import apply_override, config_from_dict, read_raw

    raw = read_raw(cfg.base)
    for assignment in cfg.set:
        apply_override(raw, assignment)
    raw = copy.deepcopy(raw)
    if model_patch:
        raw["model"] = {**raw["model"], **model_patch}
    if stage.optim:
        raw["optim"] = {**raw.get("optim", {}), **stage.optim}
    if stage.schedule:
        raw["schedule"] = dict(stage.schedule)
    raw.setdefault("train", {})
    raw["train"]["steps"] = stage.steps
    raw["train"]["out_dir"] = str(out_dir)
    for assignment in stage.set:
        apply_override(raw, assignment)
    return config_from_dict(raw)


def short_average_warning(ema_decay: float | None, steps: int) -> str | None:
    """A warning when a weight average cannot forget the start of a short stage, else None.

    An average with decay ``d`` weighs the stage's first weights by ``d ** steps``; above 10% the saved
    (averaged) model is still largely the one the stage started from."""
    if not ema_decay or ema_decay ** steps <= 0.1:
        return None
    return (f"note: the weight average (decay {ema_decay:g}) keeps {ema_decay ** steps:.0%} of the starting "
            f"weights after {steps} steps; set train.ema_decay=null (or a smaller decay) in this stage's set")


def _done(path: Path) -> bool:
    return (path / "DONE").is_file()


def _mark(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "DONE").write_text("complete\n")


def run_compression(cfg: CompressConfig, *, resume: bool = False, log: Log = print) -> dict[str, Any]:
    """Run (or continue, with ``resume``) every stage; returns the summary written to ``summary.json``."""
    from vfikit.compress.prune import compact_model
    from vfikit.compress.report import format_report, sparsity_report, write_report
    from vfikit.engine.train import build_model, train
    from vfikit.hub import create_model, save_trained_weights
    from vfikit.models.channel_spec import save_channel_spec

    out = Path(cfg.out_dir).expanduser()
    if out.exists() and any(out.iterdir()) and not resume:
        raise VfikitError(f"{out} is not empty; continue it with --resume or choose another out_dir")
    out.mkdir(parents=True, exist_ok=True)
    sparsify_dir, finetune_dir = out / "sparsify", out / "finetune"

    # 1. sparsify (EMA off: an average of sparse iterates is not sparse)
    cfg1 = _stage_config(cfg, cfg.sparsify, sparsify_dir)
    cfg1.train.ema_decay = None
    if cfg1.optim.name != "obproxsg":
        raise VfikitError("the sparsify stage needs optim.name: obproxsg")
    arch, base_args = cfg1.model.arch, dict(cfg1.model.args)
    pretrained = build_model(cfg1)
    if not _done(sparsify_dir):
        log(f"[1/5] sparsify {arch} with OBProxSG ({cfg1.optim.sparsity}, lambda {cfg1.optim.lambda_:g}) "
            f"for {cfg1.train.steps} steps")
        train(cfg1, resume="auto" if resume else None, log=log)
        _mark(sparsify_dir)
    from vfikit.engine.checkpoint import latest_checkpoint

    last = latest_checkpoint(sparsify_dir)
    if last is None:
        raise VfikitError(f"no checkpoint in {sparsify_dir}; rerun without --resume")
    sparse = create_model(last)

    # 2. report
    report = sparsity_report(sparse)
    write_report(report, out / "report.json")
    (out / "report.txt").write_text(format_report(report) + "\n")
    log(f"[2/5] sparsity report: overall density {report['density']:.4f} (out/report.txt)")

    # 3. compact
    compact_path, spec_path = out / "compact.pt", out / "channel_spec.json"
    small, widths = compact_model(sparse, cfg.strategy)
    small_args = {**base_args, "channels": widths}
    family = "cdfi" if "pyramid" in widths else "adacof"
    save_channel_spec(spec_path, widths, family=family, name=f"{arch}-compressed",
                      description=f"{arch} compressed by vfikit compress ({cfg.strategy})",
                      source=f"vfikit compress {cfg.out_dir}", force=True)
    save_trained_weights(compact_path, small, arch=arch, model_args=small_args)
    log(f"[3/5] compact model: {_params(small):,} parameters (from {_params(sparse):,}); {spec_path}")

    # 4. fine-tune the compact model from the surviving weights
    cfg2 = _stage_config(cfg, cfg.finetune, finetune_dir, {"args": small_args, "init": str(compact_path)})
    if not _done(finetune_dir):
        log(f"[4/5] fine-tune the compact model for {cfg2.train.steps} steps")
        if (note := short_average_warning(cfg2.train.ema_decay, cfg2.train.steps)) is not None:
            log(note)
        train(cfg2, resume="auto" if resume else None, log=log)
        _mark(finetune_dir)
    best = finetune_dir / "best.pt"
    final_path = best if best.is_file() else latest_checkpoint(finetune_dir)
    final = create_model(final_path)

    # 5. evaluate
    log("[5/5] evaluate")
    stages = [("pretrained", pretrained, base_args), ("sparse", sparse, base_args),
              ("compact", small, small_args), ("fine-tuned", final, small_args)]
    rows = [_measure(name, model, arch, args, cfg1, cfg.eval, out, log) for name, model, args in stages]
    summary = {"arch": arch, "strategy": cfg.strategy, "out_dir": str(out), "rows": rows,
               "param_reduction": rows[0]["params"] / max(rows[-1]["params"], 1),
               "density_after_sparsify": report["density"]}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    (out / "summary.md").write_text(summary_markdown(summary))
    log(summary_markdown(summary))
    return summary


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _measure(name: str, model: nn.Module, arch: str, args: dict, base_cfg, ev: EvalSection, out: Path,
             log: Log) -> dict[str, Any]:
    from vfikit.bench import BenchCase, BenchSettings, bench_frames, count_macs, run_case_isolated
    from vfikit.data.factory import validation_samples
    from vfikit.engine.train import validate

    model = model.eval()
    w, h = ev.latency_size
    row: dict[str, Any] = {"model": name, "params": _params(model),
                           "nonzero_params": sum(int(p.detach().ne(0).sum()) for p in model.parameters())}
    frame0, frame1 = bench_frames(w, h, torch.device("cpu"))
    with torch.inference_mode(), count_macs(model) as counter:
        model(frame0, frame1)
    row["gmacs"] = counter.total / 1e9
    if ev.measure_latency:
        from vfikit.hub import save_trained_weights

        weights = save_trained_weights(out / f"weights_{name}.pt", model, arch=arch, model_args=args)
        res = run_case_isolated(BenchCase(model=arch, width=w, height=h, weights=str(weights), model_args=args),
                                BenchSettings(warmup=1, repeats=ev.latency_repeats, min_repeats=1))
        row["latency_s"] = res.get("median_s")
        row["peak_mb"] = res.get("peak_memory_mb")
        if "error" in res:
            row["latency_error"] = res["error"]
    samples = validation_samples(base_cfg)
    if samples:
        metrics, _ = validate(model, samples, torch.device("cpu"), base_cfg.data.val_batch_size,
                              bool(getattr(model, "arbitrary_t", False)))
        row["val_psnr"] = metrics["val_psnr"]
    for bench in ev.benchmarks:
        row[f"{bench.name}_psnr"] = _benchmark_psnr(model, bench, log)
    log(f"  {name}: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()
                                 if k != "model"))
    return row


def _benchmark_psnr(model: nn.Module, bench: BenchmarkEntry, log: Log) -> float | None:
    from vfikit.data.benchmarks import open_benchmark
    from vfikit.engine.evaluate import evaluate

    if not Path(bench.root).expanduser().exists():
        if bench.optional:
            log(f"  note: benchmark {bench.name} root {bench.root} is absent; skipped")
            return None
        raise VfikitError(f"benchmark {bench.name}: root {bench.root} does not exist")
    dataset = open_benchmark(bench.name, bench.root, bench.split)
    report = evaluate(model, dataset, metrics=("psnr",), device="cpu", limit=bench.limit, progress=False)
    return float(report.summary["metrics"]["psnr"])


def summary_markdown(summary: dict[str, Any]) -> str:
    rows = summary["rows"]
    extra = [k for k in rows[0] if k.endswith("_psnr") and k != "val_psnr"]
    head = ["model", "parameters", "non-zero", "GMACs", "CPU latency s", "peak MB", "val PSNR", *extra]
    lines = [f"# Compression of {summary['arch']} ({summary['strategy']} strategy)", "",
             f"Parameters cut {summary['param_reduction']:.1f}x; density after OBProxSG "
             f"{summary['density_after_sparsify']:.4f}. Latency and MACs at the configured size.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def fmt(v: Any, spec: str) -> str:
        return "n/a" if v is None else format(v, spec)

    for r in rows:
        cells = [r["model"], f"{r['params']:,}", f"{r['nonzero_params']:,}", fmt(r.get("gmacs"), ".2f"),
                 fmt(r.get("latency_s"), ".3f"), fmt(r.get("peak_mb"), ".0f"), fmt(r.get("val_psnr"), ".2f"),
                 *[fmt(r.get(k), ".2f") for k in extra]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
