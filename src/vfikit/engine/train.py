"""The training loop: one readable loop for CPU, one GPU and DDP (torchrun).

``train(cfg)`` builds the model from the registry, the loss from ``cfg.loss``, the endless data
stream (``vfikit.data.mixing``) and runs ``cfg.train.steps`` optimiser steps with periodic logging,
validation on a held-out split and checkpoints that resume exactly. The loss is computed here,
outside the model; the model is called with ``return_aux=True`` only when a loss term needs its
aux outputs, and the temporal-flip term adds the swapped inputs to the same forward pass.

Under torchrun every process runs this function: rank and world size come from the environment,
each rank takes its share of the global batch (so N processes reproduce one process with the same
global batch), only rank 0 writes files and prints, and the RNGs are seeded with ``seed + rank``.
"""

from __future__ import annotations

import csv
import math
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from vfikit import __version__
from vfikit.config import ScheduleConfig, TrainConfig, dump_yaml, to_dict
from vfikit.data.factory import (
    build_train_stream,
    sample_fingerprint,
    stack_val,
    t_values_fixed,
    validation_samples,
)
from vfikit.data.mixing import Batch, StepBatchSampler, collate_triplets
from vfikit.data.triplet import Triplet
from vfikit.engine import distributed
from vfikit.engine.checkpoint import (
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    prune_checkpoints,
    rng_state,
    save_checkpoint,
    set_rng_state,
    step_filename,
)
from vfikit.engine.evaluate import write_image_atomic
from vfikit.errors import MissingDependencyError, VfikitError
from vfikit.hub import save_trained_weights, trained_weights
from vfikit.losses import CompositeLoss, LossInputs, build_loss
from vfikit.runtime import atomic_path, count_non_finite, resolve_device

Log = Callable[[str], None]


@dataclass
class TrainResult:
    """What a run did. ``model`` is the trained (unwrapped) module; histories hold the logged rows."""

    step: int
    out_dir: Path
    model: nn.Module
    last_checkpoint: Path | None = None
    best_checkpoint: Path | None = None
    stopped_early: bool = False
    history: list[dict[str, float]] = field(default_factory=list)
    val_history: list[dict[str, float]] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------
# building blocks


def lr_factor(step: int, schedule: ScheduleConfig, total_steps: int, base_lr: float) -> float:
    """Learning-rate multiplier for (0-based) ``step``: optional linear warm-up, then the schedule."""
    warm = schedule.warmup_steps
    if warm > 0 and step < warm:
        return (step + 1) / warm
    if schedule.name == "step":
        return schedule.gamma ** (step // schedule.step_size)
    if schedule.name == "cosine":
        progress = min(1.0, (step - warm) / max(1, total_steps - warm))
        floor = schedule.min_lr / base_lr
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0


def build_optimizer(params: list[nn.Parameter], cfg: TrainConfig, model: nn.Module | None = None
                    ) -> torch.optim.Optimizer:
    o = cfg.optim
    betas = (o.betas[0], o.betas[1])
    if o.name == "obproxsg":
        from vfikit.sparsity import OBProxSG
        from vfikit.sparsity.groups import obproxsg_param_groups

        groups = obproxsg_param_groups(model, o.sparsity, params) if model is not None else params
        return OBProxSG(groups, lr=o.lr, lambda_=o.lambda_, epoch_size=o.epoch_size, n_p=o.n_p, n_o=o.n_o,
                        eps=o.prox_eps, sparsity=o.sparsity)
    if o.name == "adamax":
        return torch.optim.Adamax(params, lr=o.lr, betas=betas, eps=o.eps, weight_decay=o.weight_decay)
    if o.name == "adamw":
        return torch.optim.AdamW(params, lr=o.lr, betas=betas, eps=o.eps, weight_decay=o.weight_decay)
    if o.name == "adam":
        return torch.optim.Adam(params, lr=o.lr, betas=betas, eps=o.eps, weight_decay=o.weight_decay)
    return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)


def build_model(cfg: TrainConfig) -> nn.Module:
    """The model of ``cfg.model`` from the registry (optionally starting from ``init`` weights)."""
    from vfikit.hub import create_model

    try:
        model = create_model(cfg.model.arch, weights=cfg.model.init, **cfg.model.args)
    except TypeError as exc:  # a factory refusing an argument: a config mistake
        raise VfikitError(f"model.args {cfg.model.args} do not fit {cfg.model.arch!r}: {exc}") from None
    if cfg.model.zero_heads:
        zero_head_outputs(model)
    if cfg.model.warm_start is not None:
        if not hasattr(model, "warm_start"):
            raise VfikitError(f"model.warm_start: {cfg.model.arch!r} cannot start from another model")
        model.warm_start(create_model(cfg.model.warm_start))
    if cfg.model.train_only is not None:
        _freeze_all_but(model, cfg.model.train_only)
    return model


def _freeze_all_but(model: nn.Module, names: list[str]) -> None:
    """Only the parameters of the submodules ``names`` (e.g. ``motion``) keep ``requires_grad``."""
    children = dict(model.named_children())
    missing = [n for n in names if children.get(n) is None]
    if missing or not names:
        raise VfikitError(f"model.train_only: {type(model).__name__} has no submodules {missing or names}; "
                          f"it has {sorted(k for k, v in children.items() if v is not None)}")
    for key, param in model.named_parameters():
        param.requires_grad_(key.split(".", 1)[0] in names)


def zero_head_outputs(model: nn.Module) -> None:
    """Zero the weights and bias of the last conv of every head in ``model.heads`` (in place)."""
    heads = getattr(model, "heads", None)
    if getattr(model, "family", None) not in ("adacof", "cdfi") or not isinstance(heads, nn.ModuleDict):
        # SepConv-style heads end in plain kernels: zeroed, their output and gradients would vanish.
        raise VfikitError(f"model.zero_heads works for the AdaCoF family (softmax tap weights), "
                          f"not {type(model).__name__}")
    with torch.no_grad():
        for name, head in heads.items():
            convs = [m for m in head.modules() if isinstance(m, nn.Conv2d)]
            if not convs:
                raise VfikitError(f"model.zero_heads: head {name!r} has no convolution")
            convs[-1].weight.zero_()
            if convs[-1].bias is not None:
                convs[-1].bias.zero_()


def _float_tree(obj: Any) -> Any:
    """Every floating tensor in a nested dict/list/tuple as float32 (aux outputs under autocast)."""
    if isinstance(obj, torch.Tensor):
        return obj.float() if obj.is_floating_point() else obj
    if isinstance(obj, dict):
        return {k: _float_tree(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_float_tree(v) for v in obj)
    return obj


def _slice_tree(obj: Any, stop: int) -> Any:
    """``obj[:stop]`` for every tensor in a nested dict/list/tuple (aux outputs of a doubled batch)."""
    if isinstance(obj, torch.Tensor):
        return obj[:stop]
    if isinstance(obj, dict):
        return {k: _slice_tree(v, stop) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_slice_tree(v, stop) for v in obj)
    return obj


def forward_for_loss(
    model: nn.Module, batch: Batch, *, need_aux: bool, need_flip: bool, pass_t: bool, need_frame: bool = True
) -> tuple[torch.Tensor | None, dict | None, torch.Tensor | None]:
    """Run the model once for the loss: (pred, aux or None, pred on swapped inputs or None).

    With ``need_flip`` the swapped pair (frame1, frame0, 1 - t) rides in the same forward pass
    (batch 2B), so DDP sees one forward per backward; aux is sliced back to the first B samples.
    Without ``need_frame`` (only motion terms) the model's ``motion_fields`` runs instead of the whole
    model: (None, its motion dict, None).
    """
    f0, f1, t = batch.frame0, batch.frame1, batch.t
    if not need_frame:
        if isinstance(model, nn.parallel.DistributedDataParallel) or not hasattr(model, "motion_fields"):
            raise VfikitError(f"a loss of motion terms alone runs a guided model's motion_fields on one process; "
                              f"{type(model).__name__} cannot skip its frame here: add a frame term (e.g. charbonnier)")
        return None, model.motion_fields(f0, f1, t if pass_t else None), None
    b = f0.shape[0]
    if need_flip:
        f0, f1, t = torch.cat([f0, f1]), torch.cat([f1, f0]), torch.cat([t, 1.0 - t])
    kwargs: dict[str, Any] = {"t": t if pass_t else None}
    if need_aux:
        kwargs["return_aux"] = True
    out = model(f0, f1, **kwargs)
    pred, aux = out if need_aux else (out, None)
    if not need_flip:
        return pred, aux, None
    return pred[:b], (_slice_tree(aux, b) if aux is not None else None), pred[b:]


def _psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample PSNR (dB) of the clamped prediction, peak 1. (B,)."""
    mse = (pred.clamp(0, 1) - target).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return -10.0 * torch.log10(mse)


@torch.no_grad()
def validate(
    model: nn.Module, samples: list[Triplet], device: torch.device, batch_size: int, pass_t: bool,
    autocast: Callable[[], Any] = nullcontext, memory_format: torch.memory_format = torch.contiguous_format,
) -> tuple[dict[str, float], list[torch.Tensor]]:
    """Mean PSNR (clamped float output) and Charbonnier over fixed samples, and the mean PSNR of each
    validation part (``val_psnr/<part>``, samples tagged by ``Triplet.part``); also the predictions."""
    was_training = model.training
    model.eval()
    psnrs, charbs, preds, parts = [], [], [], []
    try:
        i = 0
        while i < len(samples):
            size = batch_size
            shapes = {tuple(s.frame0.shape) for s in samples[i : i + size]}
            if len(shapes) > 1:
                size = 1
            f0, f1, target, t = (x.to(device) for x in stack_val(samples, i, size))
            f0, f1 = f0.contiguous(memory_format=memory_format), f1.contiguous(memory_format=memory_format)
            with autocast():
                pred = model(f0, f1, t=t if pass_t else None)
            pred = pred.float()
            psnrs.append(_psnr(pred, target).cpu())
            charbs.append(torch.sqrt((pred - target) ** 2 + 1e-6).flatten(1).mean(1).cpu())
            preds.extend(pred.clamp(0, 1).cpu())
            parts.extend(s.part for s in samples[i : i + size])
            i += size
    finally:
        model.train(was_training)
    psnr = torch.cat(psnrs)
    metrics = {"val_psnr": float(psnr.mean()), "val_charbonnier": float(torch.cat(charbs).mean())}
    for part in sorted({p for p in parts if p}):
        chosen = torch.tensor([p == part for p in parts])
        metrics[f"val_psnr/{part}"] = float(psnr[chosen].mean())
    return metrics, preds


class _StopFlag:
    """SIGINT/SIGTERM ask the loop to stop at the next step boundary (a second SIGINT aborts)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopFlag:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class _CsvLog:
    """Append rows to a CSV file; on resume rows after the resume step are dropped first."""

    def __init__(self, path: Path, columns: list[str], resume_step: int | None) -> None:
        self.path, self.columns = path, columns
        if resume_step is not None and path.is_file():
            with path.open(newline="") as fh:
                rows = [r for r in csv.DictReader(fh) if int(float(r.get("step", 0))) <= resume_step]
            with atomic_path(path) as tmp, tmp.open("w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
                writer.writeheader()
                writer.writerows(rows)
        elif not path.is_file():
            with path.open("w", newline="") as fh:
                csv.DictWriter(fh, fieldnames=columns).writeheader()

    def write(self, row: dict[str, Any]) -> None:
        with self.path.open("a", newline="") as fh:
            csv.DictWriter(fh, fieldnames=self.columns, extrasaction="ignore").writerow(row)


def _format_eta(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def _image_row(sample: Triplet, pred: torch.Tensor) -> torch.Tensor:
    """(3, H, 4W): frame0 | prediction | target | frame1."""
    return torch.cat([sample.frame0, pred, sample.target, sample.frame1], dim=2).clamp(0, 1)


def _set_threads(cfg: TrainConfig, info: distributed.DistInfo) -> int:
    """torch CPU threads of this process. (numba, used by the CPU ops, takes its thread count from
    NUMBA_NUM_THREADS; set it for several processes per machine: launching its pool here would start
    busy-waiting OpenMP threads before they are needed.)"""
    threads = cfg.train.threads or max(1, (os.cpu_count() or 1) // info.local_world_size)
    torch.set_num_threads(threads)
    return threads


# ----------------------------------------------------------------------------------------------
# the run: its state, and the loop as setup, step, log, validate, checkpoint


@dataclass
class TrainRun:
    """What one training run holds between steps (rank-local; only rank 0 has logs and a weight average)."""

    cfg: TrainConfig
    info: distributed.DistInfo
    device: torch.device
    say: Log
    out_dir: Path
    model: nn.Module
    ddp_model: nn.Module
    loss_fn: CompositeLoss
    params: list[nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    ema: nn.Module | None
    amp_dtype: torch.dtype
    memory_format: torch.memory_format
    pass_t: bool
    result: TrainResult
    step: int = 0
    best_val: float | None = None
    val_samples: list[Triplet] = field(default_factory=list)
    val_set: str | None = None  # sample_fingerprint of val_samples (a resumed run's: the checkpoint's)
    selection_key: str = "val_psnr"
    logs: _RunLogs | None = None

    @property
    def primary(self) -> bool:
        return self.info.is_primary

    @property
    def judged(self) -> nn.Module:
        """The weights that are validated and saved as best: the average when the run keeps one."""
        return self.ema.module if self.ema is not None else self.model

    def autocast(self) -> Any:
        return torch.autocast(self.device.type, dtype=self.amp_dtype) if self.cfg.train.amp else nullcontext()


@dataclass
class _RunLogs:
    """The run folder's CSV logs and TensorBoard writer (rank 0 only)."""

    train_csv: _CsvLog
    val_csv: _CsvLog
    writer: Any = None


class _Meter:
    """Loss and loss terms summed on the device between two log rows (no synchronisation per step)."""

    def __init__(self, names: list[str], device: torch.device) -> None:
        self.names = names
        self.loss = torch.zeros((), device=device)
        self.terms = {n: torch.zeros((), device=device) for n in names}
        self.count, self.mark = 0, time.perf_counter()

    def add(self, loss: torch.Tensor, terms: dict[str, torch.Tensor]) -> None:
        self.loss += loss.detach()
        for n in self.names:
            self.terms[n] += terms[n]
        self.count += 1

    def row(self, step: int, lr: float, batch_size: int, started: float) -> dict[str, float]:
        """The log row of the steps since the last one; starts a new interval."""
        now = time.perf_counter()
        sps = self.count / max(now - self.mark, 1e-9)
        row = {"step": step, "lr": lr, "loss": float(self.loss) / self.count,
               **{n: float(self.terms[n]) / self.count for n in self.names},
               "steps_per_s": sps, "samples_per_s": sps * batch_size, "elapsed_s": now - started}
        self.loss.zero_()
        for n in self.names:
            self.terms[n].zero_()
        self.count, self.mark = 0, time.perf_counter()
        return row


def train(
    cfg: TrainConfig,
    *,
    resume: str | Path | None = None,
    stop_at: int | None = None,
    log: Log = print,
) -> TrainResult:
    """Train ``cfg.model`` as configured; returns a ``TrainResult``.

    Args:
        cfg: a validated ``TrainConfig`` (``vfikit.config.load_config``).
        resume: a checkpoint path, ``"auto"`` (the newest checkpoint in ``train.out_dir``, or a
            fresh start when there is none), or None (fresh start; refused when the folder already
            holds checkpoints, so nothing is overwritten silently).
        stop_at: stop after this step (checkpointing it) even if ``train.steps`` is larger; the
            schedule still follows ``train.steps``, so a later resume continues the same run.
        log: where progress lines go (only rank 0 logs).
    Raises:
        VfikitError: for a config mistake, a checkpoint that cannot be resumed, and a run that diverges
            (a loss or weights that are not finite: nothing non-finite is saved).
    """
    info = distributed.setup(resolve_device(cfg.train.device).type)
    device = resolve_device(cfg.train.device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", info.local_rank)
    say: Log = log if info.is_primary else (lambda _msg: None)
    old_threads = torch.get_num_threads()
    try:
        return _train(cfg, info, device, say, resume, stop_at)
    finally:
        torch.set_num_threads(old_threads)


def _train(cfg: TrainConfig, info: distributed.DistInfo, device: torch.device, say: Log,
           resume: str | Path | None, stop_at: int | None) -> TrainResult:
    threads = _prepare_process(cfg, info, device, say)
    run = _setup(cfg, info, device, say, resume)
    end = min(cfg.train.steps, stop_at) if stop_at is not None else cfg.train.steps
    if run.step >= end:
        say(f"nothing to do: the run is at step {run.step} of {cfg.train.steps}")
        return run.result
    loader = _loader(run, end)
    _open_logs(run)
    _say_start(run, threads, end)
    meter, started = _Meter(list(run.loss_fn.names), device), time.perf_counter()
    with _StopFlag() as stop_flag:
        for batch in loader:
            lr = _step(run, batch, meter)
            every = cfg.train
            val_step = run.step % every.val_every == 0 or run.step == end  # alike on every rank
            validating = val_step and bool(run.val_samples)  # (only rank 0 holds validation samples)
            logging = run.step % every.log_every == 0 or run.step == end
            want_stop = _want_stop(run, stop_flag, started)
            saving = run.step % every.ckpt_every == 0 or run.step == end or want_stop
            if logging or val_step or saving:  # every rank checks at the same steps (a collective under DDP)
                _check_finite(run, meter, weights=val_step or saving)
            if logging:
                _log_row(run, meter.row(run.step, lr, cfg.data.batch_size, started), end)
            if validating:
                _validate_and_record(run)
            if saving:
                _checkpoint(run)
            if want_stop and run.step < end:
                run.result.stopped_early = True
                say(f"stopped at step {run.step} (checkpoint written); resume with --resume auto")
                break
    run.result.step = run.step
    if run.logs is not None and run.logs.writer is not None:
        run.logs.writer.close()
    distributed.barrier()
    return run.result


def _prepare_process(cfg: TrainConfig, info: distributed.DistInfo, device: torch.device, say: Log) -> int:
    """Checks that need no model, this process's threads and seeds (``seed + rank``); returns the threads."""
    run = cfg.train
    if run.amp and device.type == "cpu" and run.amp_dtype != "bfloat16":
        raise VfikitError("train.amp on CPU needs train.amp_dtype=bfloat16 (float16 autocast is a CUDA feature)")
    threads = _set_threads(cfg, info)
    if device.type == "cpu" and os.environ.get("OMP_WAIT_POLICY", "").upper() != "PASSIVE":
        say("note: OMP_WAIT_POLICY is not PASSIVE: busy-waiting OpenMP threads of torch and numba can slow CPU "
            "training 2-3x on a shared machine (docs/training.md); start with OMP_WAIT_POLICY=PASSIVE")
    seed = run.seed + info.rank
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    random.seed(seed)
    return threads


def _setup(cfg: TrainConfig, info: distributed.DistInfo, device: torch.device, say: Log,
           resume: str | Path | None) -> TrainRun:
    """The run's model, loss, optimiser, schedule, scaler, weight average and validation samples, resumed
    from a checkpoint when asked."""
    out_dir = Path(cfg.train.out_dir).expanduser()
    ckpt_path = _resolve_resume(resume, out_dir)
    model = build_model(cfg)
    pass_t = bool(getattr(model, "arbitrary_t", False))
    if not pass_t and not t_values_fixed(cfg.data):
        raise VfikitError(
            f"{cfg.model.arch} only interpolates t = 0.5, but the data config yields other t "
            "(synthetic t/t_range or sequences targets='all'); use t: 0.5 and targets: middle"
        )
    memory_format = torch.channels_last if cfg.train.channels_last else torch.contiguous_format
    model.train().to(device, memory_format=memory_format)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = build_optimizer(params, cfg, model)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, cfg.schedule, cfg.train.steps, cfg.optim.lr))
    amp_dtype = torch.float16 if cfg.train.amp_dtype == "float16" else torch.bfloat16
    run = TrainRun(
        cfg=cfg, info=info, device=device, say=say, out_dir=out_dir, model=model, ddp_model=model,
        loss_fn=build_loss(cfg.loss).to(device), params=params, optimizer=optimizer, scheduler=scheduler,
        scaler=torch.amp.GradScaler("cuda", enabled=cfg.train.amp and amp_dtype == torch.float16),
        ema=_make_ema(model, cfg.train.ema_decay) if info.is_primary else None, amp_dtype=amp_dtype,
        memory_format=memory_format, pass_t=pass_t, result=TrainResult(step=0, out_dir=out_dir, model=model),
    )
    if ckpt_path is not None:
        _resume_from(run, ckpt_path)
    run.result.step = run.step
    if info.enabled:
        run.ddp_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=cfg.train.find_unused_parameters)
    _choose_validation(run)
    return run


def _choose_validation(run: TrainRun) -> None:
    """The fixed validation samples (rank 0) and the PSNR that selects ``best.pt``."""
    cfg = run.cfg
    if not run.primary:
        return
    run.val_samples = validation_samples(cfg, seed=cfg.train.seed, log=run.say)
    _check_validation_set(run, sample_fingerprint(run.val_samples) if run.val_samples else None)
    if cfg.train.select_on is not None:
        run.selection_key = f"val_psnr/{cfg.train.select_on}"
        parts = {s.part for s in run.val_samples}
        if run.val_samples and cfg.train.select_on not in parts:
            raise VfikitError(f"train.select_on: no validation samples of part {cfg.train.select_on!r} "
                              f"(parts: {sorted(parts)})")
    if not cfg.data.val:
        run.say("note: no data.val given: no validation and no best checkpoint")


def _check_validation_set(run: TrainRun, found: str | None) -> None:
    """Record which validation set the run selects on; refuse to go on selecting against a resumed run's best
    when the set differs (a recipe's optional clips are missing here): the two PSNRs are not comparable."""
    held = run.val_set
    run.val_set = found
    if found is not None:
        run.say(f"validation set {found} ({len(run.val_samples)} samples)")
    if held is not None and found != held and run.best_val is not None:
        raise VfikitError(
            f"the validation set differs from the resumed run's ({found} here, {held} in the checkpoint): its best "
            f"PSNR {run.best_val:.3f} dB was measured on other samples, usually because optional clips of "
            "the recipe are missing on this machine; install them (see the recipe's optional_paths) or start a "
            "new run in another train.out_dir")


def _loader(run: TrainRun, end: int) -> DataLoader:
    """This rank's share of the endless training stream for steps ``run.step`` to ``end``."""
    cfg = run.cfg
    stream = build_train_stream(cfg.data, seed=cfg.train.seed, log=run.say)
    sampler = StepBatchSampler(run.step, end, cfg.data.batch_size, run.info.rank, run.info.world_size)
    workers = cfg.data.num_workers
    return DataLoader(stream, batch_sampler=sampler, num_workers=workers, collate_fn=collate_triplets,
                      pin_memory=run.device.type == "cuda", prefetch_factor=4 if workers > 0 else None)


def _say_start(run: TrainRun, threads: int, end: int) -> None:
    cfg, loss_fn = run.cfg, run.loss_fn
    run.say(
        f"training {cfg.model.arch} ({sum(p.numel() for p in run.params):,} parameters) on {run.device} "
        f"x{run.info.world_size} process(es), {threads} threads each, batch {cfg.data.batch_size}, "
        f"steps {run.step}->{end} of {cfg.train.steps}, loss "
        + " + ".join(f"{w:g}*{n}" for n, w in zip(loss_fn.names, loss_fn.weights))
    )


def _step(run: TrainRun, batch: Batch, meter: _Meter) -> float:
    """One optimiser step on ``batch`` (and the weight average); returns the learning rate it used."""
    if not run.pass_t and not bool((batch.t == 0.5).all()):
        raise VfikitError(f"{run.cfg.model.arch} only interpolates t = 0.5 but a batch has t = {batch.t.tolist()}")
    batch = batch.to(run.device, non_blocking=True, memory_format=run.memory_format)
    loss, terms, lr_used = _optimizer_step(
        batch, run.ddp_model, run.loss_fn, run.optimizer, run.scheduler, run.scaler, run.params,
        run.cfg.optim.grad_clip, run.autocast, pass_t=run.pass_t, amp=run.cfg.train.amp,
    )
    if run.ema is not None:
        run.ema.update_parameters(run.model)
    run.step += 1
    meter.add(loss, terms)
    return lr_used


def _check_finite(run: TrainRun, meter: _Meter, *, weights: bool) -> None:
    """Stop a diverged run before it logs, validates or saves anything non-finite (every rank agrees)."""
    what = "" if bool(torch.isfinite(meter.loss)) else "the loss"
    if not what and weights:
        bad = count_non_finite(run.model.state_dict()) + (
            count_non_finite(run.ema.state_dict()) if run.ema is not None else 0)
        what = "the weights" if bad else ""
    if run.info.enabled:
        what = "the loss or weights" if distributed.any_flag(bool(what), run.device) else ""
    if what:
        saved = list_checkpoints(run.out_dir)
        last = f"; the last checkpoint is {saved[-1][1]}" if saved else ""
        raise VfikitError(
            f"training diverged at step {run.step}: {what} is not finite (NaN or infinite){last}. "
            f"Lower optim.lr (now {run.cfg.optim.lr:g}), set optim.grad_clip or a warm-up (schedule.warmup_steps)"
        )


def _want_stop(run: TrainRun, stop_flag: _StopFlag, started: float) -> bool:
    """A stop request (signal, time limit); under DDP the ranks agree at log/checkpoint boundaries."""
    every = run.cfg.train
    want = stop_flag.requested or (
        every.time_limit is not None and time.perf_counter() - started > every.time_limit * 3600)
    if run.info.enabled:
        boundary = run.step % every.log_every == 0 or run.step % every.ckpt_every == 0
        want = distributed.any_flag(want, run.device) if boundary else False
    return want


def _log_row(run: TrainRun, row: dict[str, float], end: int) -> None:
    """One training log row: history, CSV, TensorBoard and a console line (rank 0)."""
    if not run.primary or run.logs is None:
        return
    names = list(run.loss_fn.names)
    run.result.history.append(row)
    run.logs.train_csv.write(row)
    if run.logs.writer is not None:
        for k in ("loss", "lr", "steps_per_s", *names):
            run.logs.writer.add_scalar(f"train/{k}", row[k], run.step)
    sps = row["steps_per_s"]
    eta = (end - run.step) / sps if sps > 0 else float("inf")
    detail = ", ".join(f"{n} {row[n]:.4g}" for n in names) if len(names) > 1 else ""
    run.say(f"step {run.step}/{run.cfg.train.steps} | loss {row['loss']:.5f}" + (f" ({detail})" if detail else "")
            + f" | lr {row['lr']:.3g} | {sps:.2f} steps/s, {row['samples_per_s']:.1f} samples/s"
            + f" | ETA {_format_eta(eta)}")


def _optimizer_step(batch, model: nn.Module, loss_fn: CompositeLoss, optimizer, scheduler, scaler, params,
                    grad_clip: float | None, autocast: Callable[[], Any], *, pass_t: bool,
                    amp: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor], float]:
    """One training step on ``batch`` (forward, loss, backward, clipping, optimiser and scheduler):
    the loss and its terms (device tensors, not synchronised) and the learning rate it used."""
    need_aux, need_flip = loss_fn.needs_aux, loss_fn.needs_flip
    with autocast():
        pred, aux, pred_flipped = forward_for_loss(model, batch, need_aux=need_aux, need_flip=need_flip,
                                                   pass_t=pass_t, need_frame=loss_fn.needs_frame)
    if amp and aux is not None:
        aux = _float_tree(aux)  # the loss is computed in float32, outside autocast
    inputs = LossInputs(
        pred=pred.float() if pred is not None else None, target=batch.target, frame0=batch.frame0,
        frame1=batch.frame1, t=batch.t,
        aux=aux, pred_flipped=pred_flipped.float() if pred_flipped is not None else None,
        motion=batch.motion, motion_known=batch.motion_known,
    )
    loss, terms = loss_fn(inputs)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if grad_clip is not None:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    lr_used = optimizer.param_groups[0]["lr"]
    scaler.step(optimizer)
    scaler.update()
    scheduler.step()
    return loss, terms, lr_used


def _validate_and_record(run: TrainRun) -> None:
    """Validate the judged weights, log the row (CSV, TensorBoard, sample grid, console) and write
    ``best.pt`` when the selection PSNR improved (rank 0; a non-finite PSNR is never an improvement)."""
    metrics, preds = validate(run.judged, run.val_samples, run.device, run.cfg.data.val_batch_size, run.pass_t,
                              run.autocast, run.memory_format)
    judged_psnr = metrics[run.selection_key]
    improved = math.isfinite(judged_psnr) and (run.best_val is None or judged_psnr > run.best_val)
    if improved:
        run.best_val = judged_psnr
    row = {"step": run.step, **metrics, "best": int(improved)}
    run.result.val_history.append(row)
    assert run.logs is not None
    run.logs.val_csv.write(row)
    by_part = ", ".join(f"{k.split('/', 1)[1]} {v:.3f}" for k, v in metrics.items() if "/" in k)
    run.say(f"validation at step {run.step}: PSNR {metrics['val_psnr']:.3f} dB" + (f" ({by_part})" if by_part else "")
            + f", Charbonnier {metrics['val_charbonnier']:.5f}" + (" (best)" if improved else ""))
    _record_images(run, metrics, preds)
    if improved:
        run.result.best_checkpoint = save_trained_weights(
            run.out_dir / "best.pt", run.judged, arch=run.cfg.model.arch, model_args=build_args(run.judged, run.cfg),
            config_args=dict(run.cfg.model.args), step=run.step, metrics=metrics, config=to_dict(run.cfg),
            vfikit_version=__version__)


def _record_images(run: TrainRun, metrics: dict[str, float], preds: list[torch.Tensor]) -> None:
    """The validation scalars and the sample grid (frame0 | prediction | target | frame1 rows)."""
    images = [_image_row(s, p) for s, p in zip(run.val_samples[: run.cfg.train.images], preds)]
    if not images:
        return
    grid = torch.cat(images, dim=1)
    writer = run.logs.writer if run.logs is not None else None
    if writer is not None:
        for key, value in metrics.items():
            if key.startswith("val_psnr/"):
                writer.add_scalar(f"val/psnr_{key.split('/', 1)[1]}", value, run.step)
        writer.add_scalar("val/psnr", metrics["val_psnr"], run.step)
        writer.add_scalar("val/charbonnier", metrics["val_charbonnier"], run.step)
        writer.add_image("val/frame0|pred|target|frame1", grid, run.step)
    write_image_atomic(run.out_dir / "samples" / f"step_{run.step:09d}.png", grid)


def _checkpoint(run: TrainRun) -> None:
    """Write ``step_*.pt`` (everything an exact resume needs; rank 0) and prune old ones."""
    ranks = distributed.gather_objects(rng_state())  # collective: every rank calls it
    if not run.primary:
        return
    cfg = run.cfg
    state = trained_weights(
        run.model, arch=cfg.model.arch, model_args=build_args(run.model, cfg), config_args=dict(cfg.model.args),
        optimizer=run.optimizer.state_dict(), scheduler=run.scheduler.state_dict(),
        scaler=run.scaler.state_dict() if run.scaler.is_enabled() else {}, step=run.step, config=to_dict(cfg),
        vfikit_version=__version__,
        rng={"ranks": ranks, "sampler": {"seed": cfg.train.seed, "next_sample": run.step * cfg.data.batch_size}},
        best_val=run.best_val, ema=run.ema.state_dict() if run.ema is not None else None, val_set=run.val_set,
    )
    run.result.last_checkpoint = save_checkpoint(run.out_dir / step_filename(run.step), state)
    prune_checkpoints(run.out_dir, cfg.train.keep_last)


def _resume_from(run: TrainRun, ckpt_path: Path) -> None:
    """Load a checkpoint into the run's objects: its step, best validation PSNR, weights and states."""
    state = load_checkpoint(ckpt_path)
    _check_resumable(state, run.cfg, ckpt_path)
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    if run.scaler.is_enabled() and state["scaler"]:
        run.scaler.load_state_dict(state["scaler"])
    run.step = int(state["step"])
    run.best_val = state.get("best_val")
    run.val_set = state.get("val_set")
    if run.ema is not None:
        if state.get("ema"):
            run.ema.load_state_dict(state["ema"])
        else:
            run.say("note: the checkpoint has no weight average; the average starts from its weights")
    ranks = state["rng"]["ranks"]
    if len(ranks) == run.info.world_size:
        set_rng_state(ranks[run.info.rank])
    else:
        run.say(f"note: checkpoint has RNG states of {len(ranks)} processes, this run has {run.info.world_size}; "
                "model randomness restarts from the seed (data order is unaffected)")
    if state["rng"]["sampler"]["seed"] != run.cfg.train.seed:
        old_seed = state["rng"]["sampler"]["seed"]
        run.say(f"note: train.seed changed from {old_seed} to {run.cfg.train.seed}: the data order differs")
    run.say(f"resumed from {ckpt_path} at step {run.step}")


_UNSET = object()


def _check_resumable(state: dict[str, Any], cfg: TrainConfig, ckpt_path: Path) -> None:
    """The checkpoint is of this config's model (naming each difference) and holds only finite values."""
    held = state.get("config_args", state["model_args"])  # checkpoints before config_args: model_args
    asked = dict(cfg.model.args)
    differences = [] if state["arch"] == cfg.model.arch else [
        f"model.arch: {state['arch']} in the checkpoint, {cfg.model.arch} in the config"]
    for key in sorted(set(held) | set(asked), key=str):
        was, now = held.get(key, _UNSET), asked.get(key, _UNSET)
        if was != now:
            differences.append(f"model.args.{key}: {'unset' if was is _UNSET else repr(was)} in the checkpoint, "
                               f"{'unset' if now is _UNSET else repr(now)} in the config")
    if differences:
        raise VfikitError(f"cannot resume {ckpt_path}: " + "; ".join(differences))
    for part in ("model", "optimizer", "ema"):
        bad = count_non_finite(state.get(part))
        if bad:
            name = {"model": "weights", "optimizer": "optimizer state", "ema": "weight average"}[part]
            raise VfikitError(f"cannot resume {ckpt_path}: its {name} holds non-finite values ({bad} NaN or "
                              "infinite): the run had diverged by then; resume from an earlier checkpoint")
    if state.get("best_val") is not None and not math.isfinite(state["best_val"]):
        state["best_val"] = None  # written by versions that kept a NaN as best


def _open_logs(run: TrainRun) -> None:
    """The run folder's config.yaml, train/val CSV logs and TensorBoard writer (rank 0; the writer only with
    ``train.tensorboard``, which needs the ``train`` extra)."""
    if not run.primary:
        return
    cfg, out_dir = run.cfg, run.out_dir
    resumed_at = run.step if run.step > 0 else None
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.yaml").write_text(dump_yaml(cfg))
    columns = ["step", "lr", "loss", *run.loss_fn.names, "steps_per_s", "samples_per_s", "elapsed_s"]
    parts = [f"val_psnr/{p}" for p in sorted({s.part for s in run.val_samples if s.part})]
    run.logs = _RunLogs(
        train_csv=_CsvLog(out_dir / "train_log.csv", columns, resumed_at),
        val_csv=_CsvLog(out_dir / "val_log.csv", ["step", "val_psnr", *parts, "val_charbonnier", "best"],
                        resumed_at),
    )
    if cfg.train.tensorboard:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise MissingDependencyError(
                "train.tensorboard needs TensorBoard: pip install 'vfikit[train]' "
                "(or set train.tensorboard: false)") from None
        run.logs.writer = SummaryWriter(str(out_dir / "tensorboard"), purge_step=resumed_at)


def _make_ema(model: nn.Module, decay: float | None) -> nn.Module | None:
    """An exponential moving average of ``model``'s weights (and buffers), or None."""
    if decay is None:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def _resolve_resume(resume: str | Path | None, out_dir: Path) -> Path | None:
    if resume is None:
        if list_checkpoints(out_dir):
            raise VfikitError(
                f"{out_dir} already holds checkpoints; resume with --resume auto (or a path), "
                "or choose another train.out_dir"
            )
        return None
    if str(resume) == "auto":
        return latest_checkpoint(out_dir)
    path = Path(resume).expanduser()
    if not path.is_file():
        raise VfikitError(f"--resume: checkpoint not found: {path}")
    return path


def build_args(model: nn.Module, cfg: TrainConfig) -> dict[str, Any]:
    """The arguments that rebuild ``model`` (the ``model_args`` of its trained weights).

    A model started from ``model.init`` weights is built with the arguments its file records, which may
    differ from ``cfg.model.args`` (a compacted network's widths, a grown stage-II model): its own record
    (``model.model_args``) wins; models that keep none are rebuilt from the config's arguments.
    """
    inner = getattr(model, "module", model)  # DDP / weight-average wrappers
    own = getattr(inner, "model_args", None)
    return dict(own) if isinstance(own, dict) else dict(cfg.model.args)
