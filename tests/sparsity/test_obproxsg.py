"""OBProxSG: exact zeros where proximal-gradient theory puts them, convergence, resume, switching."""

from __future__ import annotations

import pytest
import torch

from vfikit.errors import VfikitError
from vfikit.sparsity import OBProxSG


def _soft(b: torch.Tensor, lam: float) -> torch.Tensor:
    return torch.sign(b) * torch.clamp(b.abs() - lam, min=0)


def _minimise(opt, params, loss_fn, steps):
    for _ in range(steps):
        opt.zero_grad()
        loss_fn().backward()
        opt.step()


def test_l1_separable_problem_converges_to_soft_threshold_with_exact_zeros(gen):
    b = torch.randn(200, generator=gen, dtype=torch.float64)
    lam = 0.5
    x = torch.zeros_like(b).requires_grad_()
    x.data.copy_(torch.randn(200, generator=gen, dtype=torch.float64))
    opt = OBProxSG([x], lr=0.2, lambda_=lam, epoch_size=10, n_p=3)
    _minimise(opt, [x], lambda: 0.5 * (x - b).pow(2).sum(), 300)
    want = _soft(b, lam)
    clear = (b.abs() - lam).abs() > 1e-3  # skip entries sitting on the threshold
    assert torch.equal(x.detach()[clear] == 0, want[clear] == 0)  # exact zeros, not small values
    torch.testing.assert_close(x.detach(), want, atol=1e-8, rtol=0)


def test_one_proximal_step_zeroes_exactly_the_entries_theory_says(gen):
    x0 = torch.randn(100, generator=gen, dtype=torch.float64)
    g = torch.randn(100, generator=gen, dtype=torch.float64)
    lr, lam = 0.1, 2.0
    x = x0.clone().requires_grad_()
    x.grad = g.clone()
    OBProxSG([x], lr=lr, lambda_=lam, n_p=1).step()
    z = x0 - lr * g
    assert torch.equal(x.detach() == 0, z.abs() <= lr * lam)
    torch.testing.assert_close(x.detach(), _soft(z, lr * lam))


def test_orthant_step_keeps_zeros_and_stops_sign_changes(gen):
    x = torch.tensor([0.0, 0.5, -0.5, 0.05, -0.05], dtype=torch.float64, requires_grad=True)
    x.grad = torch.tensor([10.0, 1.0, -1.0, 1.0, -1.0], dtype=torch.float64)
    opt = OBProxSG([x], lr=0.1, lambda_=0.1, n_p=0, n_o=None)  # orthant from the start
    assert not OBProxSG.is_proximal(opt.param_groups[0])
    opt.step()
    # 0 stays 0 despite a large gradient; +-0.5 move by lr*(g + lam*sign); +-0.05 would cross zero -> 0
    torch.testing.assert_close(x.detach(), torch.tensor([0.0, 0.39, -0.39, 0.0, 0.0], dtype=torch.float64))


def test_lasso_regression_matches_ista_support(gen):
    n, d = 80, 30
    a = torch.randn(n, d, generator=gen, dtype=torch.float64)
    truth = torch.zeros(d, dtype=torch.float64)
    truth[:5] = torch.tensor([2.0, -1.5, 1.0, 3.0, -2.5], dtype=torch.float64)
    y = a @ truth + 0.01 * torch.randn(n, generator=gen, dtype=torch.float64)
    lam = 0.1
    step = 1.0 / torch.linalg.matrix_norm(a, ord=2).item() ** 2 * n

    def grad_f(x):
        return a.T @ (a @ x - y) / n

    ref = torch.zeros(d, dtype=torch.float64)  # ISTA: the textbook proximal-gradient solution
    for _ in range(5000):
        ref = _soft(ref - step * grad_f(ref), step * lam)
    x = torch.zeros(d, dtype=torch.float64, requires_grad=True)
    opt = OBProxSG([x], lr=step, lambda_=lam, epoch_size=100, n_p=5)
    _minimise(opt, [x], lambda: 0.5 * (a @ x - y).pow(2).sum() / n, 3000)
    assert torch.equal(x.detach() == 0, ref == 0)
    torch.testing.assert_close(x.detach(), ref, atol=1e-6, rtol=0)


def test_group_sparsity_zeroes_whole_output_channels(gen):
    rows = 12
    bw = torch.randn(rows, 3, 2, 2, generator=gen, dtype=torch.float64)
    bb = torch.randn(rows, generator=gen, dtype=torch.float64)
    bw[:4] *= 0.05  # weak channels
    bb[:4] *= 0.05
    w = torch.randn_like(bw).requires_grad_()
    b = torch.randn_like(bb).requires_grad_()
    lam = 0.8
    opt = OBProxSG([{"params": [w, b], "sparsity": "group"}], lr=0.3, lambda_=lam, epoch_size=10, n_p=3)
    _minimise(opt, [w, b], lambda: 0.5 * ((w - bw).pow(2).sum() + (b - bb).pow(2).sum()), 300)
    norms = (bw.flatten(1).pow(2).sum(1) + bb.pow(2)).sqrt()
    scale = torch.clamp(1 - lam / norms, min=0)  # group-lasso solution of this separable problem
    dead = scale == 0
    assert dead[:4].all() and not dead[4:].any()
    assert (w.detach()[dead] == 0).all() and (b.detach()[dead] == 0).all()
    torch.testing.assert_close(w.detach(), bw * scale.view(-1, 1, 1, 1), atol=1e-8, rtol=0)
    torch.testing.assert_close(b.detach(), bb * scale, atol=1e-8, rtol=0)


def test_mode_switching_follows_epochs():
    x = torch.zeros(3, requires_grad=True)
    opt = OBProxSG([x], epoch_size=2, n_p=2, n_o=3)
    modes = []
    for _ in range(12):
        modes.append(OBProxSG.is_proximal(opt.param_groups[0]))
        x.grad = torch.zeros(3)
        opt.step()
    # epochs of 2 steps: P P | O O O | P (cycle of 5 epochs)
    assert modes == [True] * 4 + [False] * 6 + [True] * 2


def test_state_dict_resume_is_exact(gen):
    target = torch.randn(50, generator=gen)

    def run(steps, opt_state=None, x0=None):
        x = (x0.clone() if x0 is not None else torch.zeros(50)).requires_grad_()
        opt = OBProxSG([x], lr=0.1, lambda_=0.2, epoch_size=3, n_p=2)
        if opt_state is not None:
            opt.load_state_dict(opt_state)
        _minimise(opt, [x], lambda: 0.5 * (x - target).pow(2).sum(), steps)
        return x.detach(), opt.state_dict()

    straight, _ = run(20)
    half, state = run(7)
    resumed, _ = run(13, opt_state=state, x0=half)
    assert torch.equal(straight, resumed)


def test_bad_arguments_raise_clear_errors():
    x = torch.zeros(3, requires_grad=True)
    with pytest.raises(VfikitError, match="sparsity must be one of"):
        OBProxSG([x], sparsity="l0")
    with pytest.raises(VfikitError, match="one size along dim 0"):
        OBProxSG([{"params": [torch.zeros(3, requires_grad=True), torch.zeros(4, requires_grad=True)],
                   "sparsity": "group"}])
    with pytest.raises(VfikitError, match="lr must be > 0"):
        OBProxSG([x], lr=0)
