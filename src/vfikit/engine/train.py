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
from vfikit.data.factory import build_train_stream, build_val_samples, stack_val, t_values_fixed
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
from vfikit.errors import VfikitError
from vfikit.losses import CompositeLoss, LossInputs, build_loss
from vfikit.runtime import atomic_path

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
    model: nn.Module, batch: Batch, *, need_aux: bool, need_flip: bool, pass_t: bool
) -> tuple[torch.Tensor, dict | None, torch.Tensor | None]:
    """Run the model once for the loss: (pred, aux or None, pred on swapped inputs or None).

    With ``need_flip`` the swapped pair (frame1, frame0, 1 - t) rides in the same forward pass
    (batch 2B), so DDP sees one forward per backward; aux is sliced back to the first B samples.
    """
    f0, f1, t = batch.frame0, batch.frame1, batch.t
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


VAL_SEED_OFFSET = 1_000_003  # the validation samples' seed is the run's train.seed plus this


def validation_samples(cfg: TrainConfig, seed: int | None = None,
                       log: Callable[[str], None] = lambda _m: None) -> list[Triplet]:
    """The fixed samples of ``cfg.data.val`` that ``vfikit train`` selects weights with, for the run's
    ``train.seed`` (or ``seed``): the same list in training, compression and the probes."""
    return build_val_samples(cfg.data, seed=(cfg.train.seed if seed is None else seed) + VAL_SEED_OFFSET, log=log)


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


def _select_device(cfg: TrainConfig, info: distributed.DistInfo) -> torch.device:
    want = cfg.train.device
    if want == "cuda" and not torch.cuda.is_available():
        raise VfikitError("train.device is 'cuda' but no CUDA device is available (use 'cpu' or 'auto')")
    if want == "cuda" or (want == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", info.local_rank)
    return torch.device("cpu")


def _set_threads(cfg: TrainConfig, info: distributed.DistInfo) -> int:
    """torch CPU threads of this process. (numba, used by the CPU ops, takes its thread count from
    NUMBA_NUM_THREADS; set it for several processes per machine: launching its pool here would start
    busy-waiting OpenMP threads before they are needed.)"""
    threads = cfg.train.threads or max(1, (os.cpu_count() or 1) // info.local_world_size)
    torch.set_num_threads(threads)
    return threads


# ----------------------------------------------------------------------------------------------
# the loop


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
    """
    run = cfg.train
    device_type = "cuda" if (run.device == "cuda" or (run.device == "auto" and torch.cuda.is_available())) else "cpu"
    info = distributed.setup(device_type)
    device = _select_device(cfg, info)
    primary = info.is_primary
    say: Log = log if primary else (lambda _msg: None)
    old_threads = torch.get_num_threads()
    try:
        return _train(cfg, info, device, primary, say, resume, stop_at)
    finally:
        torch.set_num_threads(old_threads)


def _train(
    cfg: TrainConfig, info: distributed.DistInfo, device: torch.device, primary: bool, say: Log,
    resume: str | Path | None, stop_at: int | None,
) -> TrainResult:
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
    import random

    random.seed(seed)

    out_dir = Path(run.out_dir).expanduser()
    ckpt_path = _resolve_resume(resume, out_dir)

    model = build_model(cfg)
    arbitrary_t = bool(getattr(model, "arbitrary_t", False))
    if not arbitrary_t and not t_values_fixed(cfg.data):
        raise VfikitError(
            f"{cfg.model.arch} only interpolates t = 0.5, but the data config yields other t "
            "(synthetic t/t_range or sequences targets='all'); use t: 0.5 and targets: middle"
        )
    memory_format = torch.channels_last if run.channels_last else torch.contiguous_format
    model.train().to(device, memory_format=memory_format)
    loss_fn: CompositeLoss = build_loss(cfg.loss).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = build_optimizer(params, cfg, model)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, cfg.schedule, run.steps, cfg.optim.lr)
    )
    amp_dtype = torch.float16 if run.amp_dtype == "float16" else torch.bfloat16
    scaler = torch.amp.GradScaler("cuda", enabled=run.amp and amp_dtype == torch.float16)

    def autocast() -> Any:
        return torch.autocast(device.type, dtype=amp_dtype) if run.amp else nullcontext()

    ema = _make_ema(model, run.ema_decay) if primary else None
    start_step, best_val = 0, None
    if ckpt_path is not None:
        start_step, best_val = _resume_from(ckpt_path, cfg, info, say, model, optimizer, scheduler, scaler, ema)

    total = run.steps
    end = min(total, stop_at) if stop_at is not None else total
    result = TrainResult(step=start_step, out_dir=out_dir, model=model)
    if start_step >= end:
        say(f"nothing to do: the run is at step {start_step} of {total}")
        return result

    ddp_model: nn.Module = model
    if info.enabled:
        ddp_model = nn.parallel.DistributedDataParallel(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=run.find_unused_parameters,
        )

    stream = build_train_stream(cfg.data, seed=run.seed, log=say)
    val_samples = validation_samples(cfg, seed=run.seed, log=say) if primary else []
    selection_key = "val_psnr"
    if run.select_on is not None:
        selection_key = f"val_psnr/{run.select_on}"
        if primary and val_samples and run.select_on not in {s.part for s in val_samples}:
            raise VfikitError(f"train.select_on: no validation samples of part {run.select_on!r} "
                              f"(parts: {sorted({s.part for s in val_samples})})")
    if primary and not cfg.data.val:
        say("note: no data.val given: no validation and no best checkpoint")
    sampler = StepBatchSampler(start_step, end, cfg.data.batch_size, info.rank, info.world_size)
    workers = cfg.data.num_workers
    loader = DataLoader(
        stream,
        batch_sampler=sampler,
        num_workers=workers,
        collate_fn=collate_triplets,
        pin_memory=device.type == "cuda",
        prefetch_factor=4 if workers > 0 else None,
    )

    term_names = list(loss_fn.names)
    train_csv = val_csv = writer = None
    if primary:
        train_csv, val_csv, writer = _open_logs(cfg, out_dir, term_names, val_samples,
                                                start_step if ckpt_path is not None else None)
    say(
        f"training {cfg.model.arch} ({sum(p.numel() for p in params):,} parameters) on {device} "
        f"x{info.world_size} process(es), {threads} threads each, batch {cfg.data.batch_size}, "
        f"steps {start_step}->{end} of {total}, loss " + " + ".join(f"{w:g}*{n}" for n, w in
                                                                    zip(loss_fn.names, loss_fn.weights))
    )

    pass_t = arbitrary_t
    acc_loss = torch.zeros((), device=device)
    acc_terms = {n: torch.zeros((), device=device) for n in term_names}
    acc_n = 0
    t_start = t_mark = time.perf_counter()
    step = start_step
    stopped = False
    run_started = time.perf_counter()

    with _StopFlag() as stop_flag:
        for batch in loader:
            if not pass_t and not bool((batch.t == 0.5).all()):
                raise VfikitError(f"{cfg.model.arch} only interpolates t = 0.5 but a batch has t = {batch.t.tolist()}")
            batch = batch.to(device, non_blocking=True, memory_format=memory_format)
            loss, terms, lr_used = _optimizer_step(
                batch, ddp_model, loss_fn, optimizer, scheduler, scaler, params, cfg.optim.grad_clip, autocast,
                pass_t=pass_t, amp=run.amp,
            )
            if ema is not None:
                ema.update_parameters(model)
            step += 1
            acc_loss += loss.detach()
            for n in term_names:
                acc_terms[n] += terms[n]
            acc_n += 1

            if step % run.log_every == 0 or step == end:
                now = time.perf_counter()
                sps = acc_n / max(now - t_mark, 1e-9)
                row = {
                    "step": step,
                    "lr": lr_used,
                    "loss": float(acc_loss) / acc_n,
                    **{n: float(acc_terms[n]) / acc_n for n in term_names},
                    "steps_per_s": sps,
                    "samples_per_s": sps * cfg.data.batch_size,
                    "elapsed_s": now - t_start,
                }
                if primary:
                    result.history.append(row)
                    assert train_csv is not None
                    train_csv.write(row)
                    if writer is not None:
                        for k in ("loss", "lr", "steps_per_s", *term_names):
                            writer.add_scalar(f"train/{k}", row[k], step)
                    eta = (end - step) / sps if sps > 0 else float("inf")
                    detail = ", ".join(f"{n} {row[n]:.4g}" for n in term_names) if len(term_names) > 1 else ""
                    say(f"step {step}/{total} | loss {row['loss']:.5f}" + (f" ({detail})" if detail else "")
                        + f" | lr {row['lr']:.3g} | {sps:.2f} steps/s, {row['samples_per_s']:.1f} samples/s"
                        + f" | ETA {_format_eta(eta)}")
                acc_loss.zero_()
                for n in term_names:
                    acc_terms[n].zero_()
                acc_n, t_mark = 0, time.perf_counter()

            if val_samples and (step % run.val_every == 0 or step == end):
                judged = ema.module if ema is not None else model
                best_val = _validate_and_record(
                    judged, val_samples, step, best_val, selection_key, cfg, device, pass_t, autocast,
                    memory_format, result, val_csv, writer, say, out_dir,
                )
            # stop requests (signal, time limit); under DDP the ranks agree at log/checkpoint boundaries
            want_stop = stop_flag.requested or (
                run.time_limit is not None and time.perf_counter() - run_started > run.time_limit * 3600
            )
            if info.enabled:
                boundary = step % run.log_every == 0 or step % run.ckpt_every == 0
                want_stop = distributed.any_flag(want_stop, device) if boundary else False
            if step % run.ckpt_every == 0 or step == end or want_stop:
                ranks = distributed.gather_objects(rng_state())  # collective: every rank calls it
                if primary:
                    result.last_checkpoint = _save_training_checkpoint(
                        cfg, out_dir, step, ranks, model, optimizer, scheduler, scaler, ema, best_val,
                    )
            if want_stop and step < end:
                stopped = True
                say(f"stopped at step {step} (checkpoint written); resume with --resume auto")
                break

    result.step, result.stopped_early = step, stopped
    if writer is not None:
        writer.close()
    distributed.barrier()
    return result


def _optimizer_step(batch, model: nn.Module, loss_fn: CompositeLoss, optimizer, scheduler, scaler, params,
                    grad_clip: float | None, autocast: Callable[[], Any], *, pass_t: bool,
                    amp: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor], float]:
    """One training step on ``batch`` (forward, loss, backward, clipping, optimiser and scheduler):
    the loss and its terms (device tensors, not synchronised) and the learning rate it used."""
    need_aux, need_flip = loss_fn.needs_aux, loss_fn.needs_flip
    with autocast():
        pred, aux, pred_flipped = forward_for_loss(model, batch, need_aux=need_aux, need_flip=need_flip,
                                                   pass_t=pass_t)
    if amp and aux is not None:
        aux = _float_tree(aux)  # the loss is computed in float32, outside autocast
    inputs = LossInputs(
        pred=pred.float(), target=batch.target, frame0=batch.frame0, frame1=batch.frame1, t=batch.t,
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


def _validate_and_record(judged: nn.Module, val_samples: list[Triplet], step: int, best_val: float | None,
                         selection_key: str, cfg: TrainConfig, device: torch.device, pass_t: bool,
                         autocast: Callable[[], Any], memory_format: torch.memory_format, result: TrainResult,
                         val_csv: _CsvLog | None, writer: Any, say: Log, out_dir: Path) -> float | None:
    """Validate ``judged``, log the row (CSV, TensorBoard, sample grid, console) and write ``best.pt`` when
    the selection PSNR improved; returns the best selection PSNR so far."""
    run = cfg.train
    metrics, preds = validate(judged, val_samples, device, cfg.data.val_batch_size, pass_t, autocast,
                              memory_format)
    judged_psnr = metrics[selection_key]
    improved = best_val is None or judged_psnr > best_val
    if improved:
        best_val = judged_psnr
    row = {"step": step, **metrics, "best": int(improved)}
    result.val_history.append(row)
    assert val_csv is not None
    val_csv.write(row)
    by_part = ", ".join(f"{k.split('/', 1)[1]} {v:.3f}" for k, v in metrics.items() if "/" in k)
    say(f"validation at step {step}: PSNR {metrics['val_psnr']:.3f} dB"
        + (f" ({by_part})" if by_part else "")
        + f", Charbonnier {metrics['val_charbonnier']:.5f}" + (" (best)" if improved else ""))
    images = [_image_row(s, p) for s, p in zip(val_samples[: run.images], preds)]
    if images:
        grid = torch.cat(images, dim=1)
        if writer is not None:
            for key, value in metrics.items():
                if key.startswith("val_psnr/"):
                    writer.add_scalar(f"val/psnr_{key.split('/', 1)[1]}", value, step)
            writer.add_scalar("val/psnr", metrics["val_psnr"], step)
            writer.add_scalar("val/charbonnier", metrics["val_charbonnier"], step)
            writer.add_image("val/frame0|pred|target|frame1", grid, step)
        _write_png(out_dir / "samples" / f"step_{step:09d}.png", grid)
    if improved:
        result.best_checkpoint = _save_best(out_dir, judged, cfg, step, metrics)
    return best_val


def _save_training_checkpoint(cfg: TrainConfig, out_dir: Path, step: int, ranks: list, model: nn.Module, optimizer,
                              scheduler, scaler, ema, best_val: float | None) -> Path:
    """Write ``step_*.pt`` (everything an exact resume needs) and prune old ones; returns its path."""
    run = cfg.train
    state = {
        "model": model.state_dict(),
        "arch": cfg.model.arch,
        "model_args": build_args(model, cfg),
        "config_args": dict(cfg.model.args),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler.is_enabled() else {},
        "step": step,
        "config": to_dict(cfg),
        "vfikit_version": __version__,
        "rng": {"ranks": ranks, "sampler": {"seed": run.seed, "next_sample": step * cfg.data.batch_size}},
        "best_val": best_val,
        "ema": ema.state_dict() if ema is not None else None,
    }
    path = save_checkpoint(out_dir / step_filename(step), state)
    prune_checkpoints(out_dir, run.keep_last)
    return path


def _resume_from(
    ckpt_path: Path, cfg: TrainConfig, info: distributed.DistInfo, say: Log, model: nn.Module,
    optimizer: torch.optim.Optimizer, scheduler: Any, scaler: Any, ema: nn.Module | None,
) -> tuple[int, float | None]:
    """Load a checkpoint into the run's objects; returns (the step it reached, its best validation PSNR)."""
    run = cfg.train
    state = load_checkpoint(ckpt_path)
    held = state.get("config_args", state["model_args"])  # checkpoints before config_args: model_args
    if state["arch"] != cfg.model.arch or held != cfg.model.args:
        raise VfikitError(
            f"cannot resume {ckpt_path}: it holds {state['arch']} {held}, "
            f"the config asks for {cfg.model.arch} {cfg.model.args}"
        )
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if scaler.is_enabled() and state["scaler"]:
        scaler.load_state_dict(state["scaler"])
    start_step = int(state["step"])
    best_val = state.get("best_val")
    if ema is not None:
        if state.get("ema"):
            ema.load_state_dict(state["ema"])
        else:
            say("note: the checkpoint has no weight average; the average starts from its weights")
    ranks = state["rng"]["ranks"]
    if len(ranks) == info.world_size:
        set_rng_state(ranks[info.rank])
    else:
        say(f"note: checkpoint has RNG states of {len(ranks)} processes, this run has {info.world_size}; "
            "model randomness restarts from the seed (data order is unaffected)")
    if state["rng"]["sampler"]["seed"] != run.seed:
        old_seed = state["rng"]["sampler"]["seed"]
        say(f"note: train.seed changed from {old_seed} to {run.seed}: the data order differs")
    say(f"resumed from {ckpt_path} at step {start_step}")
    return start_step, best_val


def _open_logs(
    cfg: TrainConfig, out_dir: Path, term_names: list[str], val_samples: list[Triplet], resumed_at: int | None,
) -> tuple[_CsvLog, _CsvLog, Any]:
    """The run folder's config.yaml, train/val CSV logs and TensorBoard writer (None when off)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.yaml").write_text(dump_yaml(cfg))
    columns = ["step", "lr", "loss", *term_names, "steps_per_s", "samples_per_s", "elapsed_s"]
    train_csv = _CsvLog(out_dir / "train_log.csv", columns, resumed_at)
    part_columns = [f"val_psnr/{p}" for p in sorted({s.part for s in val_samples if s.part})]
    val_csv = _CsvLog(out_dir / "val_log.csv", ["step", "val_psnr", *part_columns, "val_charbonnier", "best"],
                      resumed_at)
    writer = None
    if cfg.train.tensorboard:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out_dir / "tensorboard"), purge_step=resumed_at)
    return train_csv, val_csv, writer


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
    """The arguments that rebuild ``model`` (what ``hub.load_trained_model`` passes to ``create_model``).

    A model started from ``model.init`` weights is built with the arguments its file records, which may
    differ from ``cfg.model.args`` (a compacted network's widths, a grown stage-II model): its own record
    (``model.model_args``) wins; models that keep none are rebuilt from the config's arguments.
    """
    inner = getattr(model, "module", model)  # DDP / weight-average wrappers
    own = getattr(inner, "model_args", None)
    return dict(own) if isinstance(own, dict) else dict(cfg.model.args)


def _save_best(out_dir: Path, model: nn.Module, cfg: TrainConfig, step: int, metrics: dict[str, float]) -> Path:
    """``best.pt``: the model with the best validation PSNR (weights + how to rebuild it)."""
    path = out_dir / "best.pt"
    with atomic_path(path) as tmp:
        torch.save({"model": model.state_dict(), "arch": cfg.model.arch, "model_args": build_args(model, cfg),
                    "config_args": dict(cfg.model.args), "step": step, "metrics": metrics, "config": to_dict(cfg),
                    "vfikit_version": __version__}, tmp)
    return path


def _write_png(path: Path, image: torch.Tensor) -> None:
    from vfikit.image_files import write_image

    with atomic_path(path) as tmp:
        write_image(tmp, image)
