"""OBProxSG: orthant-based proximal stochastic gradient for l1- (or group-l1-) regularised training.

Minimises ``f(x) + lambda * Omega(x)`` where ``f`` is the training loss (its minibatch gradient is
what ``backward`` leaves in ``.grad``) and ``Omega`` is chosen per parameter group:

* ``sparsity="l1"``: ``Omega = sum |x_i|`` element-wise (the CDFI paper's setting).
* ``sparsity="group"``: ``Omega = sum_g ||x_g||_2`` where group ``g`` is index ``g`` along dim 0
  of every tensor in the parameter group (put a conv's weight and bias in one group: a zero group is
  a removable output channel).
* ``sparsity="none"``: plain SGD (for layers whose width is fixed, e.g. output heads).

Each step is one of two kinds, chosen by an epoch counter (``epoch_size`` steps per epoch):
proximal for the first ``n_p`` epochs of every ``n_p + n_o`` (``n_o=None`` means forever after):

* proximal step: ``x <- prox(x - lr * g)``: soft-thresholding (l1) or group shrinkage; this is where
  exact zeros appear.
* orthant step (l1): on non-zeros, ``x_hat = x - lr * (g + lambda * sign(x))``, then project onto the
  orthant of ``x``: an entry that would change sign or end within ``eps`` of zero becomes 0; zeros
  stay zero. Group mode uses the half-space analogue: ``x_hat_g = x_g - lr * (g_g + lambda *
  x_g/||x_g||)``, and the group becomes 0 when ``<x_hat_g, x_g> <= eps * ||x_g||^2``.

The step counters live in each parameter group, so ``state_dict()``/``load_state_dict()`` resume
exactly. No momentum and no weight decay, as in the original.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from vfikit.errors import VfikitError

SPARSITY = ("l1", "group", "none")


class OBProxSG(torch.optim.Optimizer):
    """torch.optim.Optimizer implementing OBProxSG (see module docstring).

    Args:
        params: parameters or parameter-group dicts (a group may set its own ``sparsity``,
            ``lambda_``, ``lr``).
        lr: step size.
        lambda_: regularisation weight.
        epoch_size: optimizer steps per epoch (the unit of ``n_p``/``n_o``).
        n_p: proximal epochs per cycle.
        n_o: orthant epochs per cycle (None: infinite, i.e. orthant forever after the first ``n_p``).
        eps: orthant/half-space projection margin (>= 0).
        sparsity: default regulariser of groups that do not set one.
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, lambda_: float = 1e-4, epoch_size: int = 1,
                 n_p: int = 5, n_o: int | None = None, eps: float = 0.0, sparsity: str = "l1") -> None:
        if lr <= 0:
            raise VfikitError(f"OBProxSG: lr must be > 0, got {lr}")
        if lambda_ < 0:
            raise VfikitError(f"OBProxSG: lambda_ must be >= 0, got {lambda_}")
        if epoch_size < 1:
            raise VfikitError(f"OBProxSG: epoch_size must be >= 1, got {epoch_size}")
        if n_p < 0 or (n_o is not None and n_o < 0) or (n_o == 0 and n_p == 0):
            raise VfikitError(f"OBProxSG: n_p={n_p}, n_o={n_o} must be >= 0 and not both 0")
        if eps < 0:
            raise VfikitError(f"OBProxSG: eps must be >= 0, got {eps}")
        defaults = {"lr": lr, "lambda_": lambda_, "epoch_size": epoch_size, "n_p": n_p, "n_o": n_o, "eps": eps,
                    "sparsity": sparsity, "epoch": 0, "iter": 0}
        super().__init__(params, defaults)
        for group in self.param_groups:
            if group["sparsity"] not in SPARSITY:
                raise VfikitError(f"OBProxSG: sparsity must be one of {SPARSITY}, got {group['sparsity']!r}")
            if group["sparsity"] == "group":
                rows = {p.shape[0] if p.dim() else 1 for p in group["params"]}
                if len(rows) != 1:
                    raise VfikitError(
                        f"OBProxSG: a group-sparsity parameter group needs one size along dim 0, got {sorted(rows)}"
                    )

    @staticmethod
    def is_proximal(group: dict) -> bool:
        """Whether the next step of ``group`` is a proximal step (else an orthant step)."""
        if group["n_o"] is None:
            return group["epoch"] < group["n_p"]
        return group["epoch"] % (group["n_p"] + group["n_o"]) < group["n_p"]

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = group["params"]
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
            lr, lam, eps = group["lr"], group["lambda_"], group["eps"]
            kind = group["sparsity"]
            if kind == "none":
                for p, g in zip(params, grads):
                    p.sub_(g, alpha=lr)
            elif kind == "l1":
                prox = self.is_proximal(group)
                for p, g in zip(params, grads):
                    _l1_prox_(p, g, lr, lam) if prox else _l1_orthant_(p, g, lr, lam, eps)
            else:
                if self.is_proximal(group):
                    _group_prox_(params, grads, lr, lam)
                else:
                    _group_halfspace_(params, grads, lr, lam, eps)
            group["iter"] += 1
            if group["iter"] >= group["epoch_size"]:
                group["iter"] = 0
                group["epoch"] += 1
        return loss


def _l1_prox_(p: torch.Tensor, g: torch.Tensor, lr: float, lam: float) -> None:
    z = p - lr * g
    p.copy_(torch.sign(z) * torch.clamp(z.abs() - lr * lam, min=0.0))


def _l1_orthant_(p: torch.Tensor, g: torch.Tensor, lr: float, lam: float, eps: float) -> None:
    zeta = torch.sign(p)
    trial = p - lr * (g + lam * zeta)
    keep = (zeta != 0) & (zeta * trial > eps)
    p.copy_(torch.where(keep, trial, torch.zeros_like(trial)))


def _rows(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Per-group squared norms: tensors share dim 0; returns (rows,)."""
    return sum(t.reshape(t.shape[0] if t.dim() else 1, -1).pow(2).sum(1) for t in tensors)


def _scale_rows_(tensors: list[torch.Tensor], scale: torch.Tensor) -> None:
    for t in tensors:
        t.mul_(scale.view(-1, *([1] * (t.dim() - 1))) if t.dim() else scale[0])


def _group_prox_(params, grads, lr: float, lam: float) -> None:
    for p, g in zip(params, grads):
        p.sub_(g, alpha=lr)
    norm = _rows(params).sqrt()
    scale = torch.clamp(1.0 - lr * lam / norm.clamp_min(torch.finfo(norm.dtype).tiny), min=0.0)
    _scale_rows_(params, scale)


def _group_halfspace_(params, grads, lr: float, lam: float, eps: float) -> None:
    sq = _rows(params)
    alive = sq > 0
    norm = sq.sqrt().clamp_min(torch.finfo(sq.dtype).tiny)
    trials = []
    for p, g in zip(params, grads):
        shape = (-1, *([1] * (p.dim() - 1))) if p.dim() else (1,)
        trials.append(p - lr * (g + lam * p / norm.view(shape)))
    inner = sum((t * p).reshape(t.shape[0] if t.dim() else 1, -1).sum(1) for t, p in zip(trials, params))
    keep = alive & (inner > eps * sq)
    for p, t in zip(params, trials):
        shape = (-1, *([1] * (p.dim() - 1))) if p.dim() else (1,)
        p.copy_(torch.where(keep.view(shape), t, torch.zeros_like(t)))
