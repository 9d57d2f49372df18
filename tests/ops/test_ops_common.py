"""Properties every op shares: fast paths vs reference, gradcheck, errors, backend selection."""

from __future__ import annotations

import pytest
import torch

from tests.ops.opcases import OPS, make_case
from vfikit.errors import VfikitError, VfikitTypeError
from vfikit.ops import adacof, resolve_backend

CONVENTIONS = ("official", "clean")
FAST = ("numba", "torch")
# dtype -> (rtol, atol) for fast path vs reference
TOL = {torch.float64: (1e-12, 1e-12), torch.float32: (2e-5, 2e-5), torch.bfloat16: (3e-2, 3e-2)}


def _grads(case, backend, g):
    args = {k: v.detach().clone().requires_grad_(True) for k, v in case.args.items()}
    out = case.call(backend, **args)
    (out * g).sum().backward()
    return out.detach(), {k: v.grad for k, v in args.items()}


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("convention", CONVENTIONS)
@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("batch", [0, 1, 3])
def test_fast_path_matches_reference(op, convention, backend, dtype, batch, gen):
    case = make_case(op, convention, gen=gen, n=batch, c=4, h=6, w=9, size=3, dilation=2, dtype=dtype)
    g = torch.randn(batch, 4, 6, 9, generator=gen, dtype=dtype)
    out_ref, grads_ref = _grads(case, "reference", g)
    out, grads = _grads(case, backend, g)
    rtol, atol = TOL[dtype]
    torch.testing.assert_close(out, out_ref, rtol=rtol, atol=atol)
    for k in grads_ref:
        torch.testing.assert_close(grads[k], grads_ref[k], rtol=rtol, atol=atol, msg=lambda m, k=k: f"{k}: {m}")


@pytest.mark.parametrize("op", ["adacof", "dsepconv"])
@pytest.mark.parametrize("convention", CONVENTIONS)
@pytest.mark.parametrize("backend", FAST)
def test_far_out_of_range_and_non_finite_offsets(op, convention, backend, gen):
    case = make_case(op, convention, gen=gen, h=5, w=6, size=3)
    oy = case.args["offset_y"].clone()
    flat = oy.view(-1)
    flat[::4] = 1e4
    flat[1::4] = -1e12
    flat[2::9] = float("inf")
    flat[3::9] = float("-inf")
    ref = case.call("reference", offset_y=oy)
    out = case.call(backend, offset_y=oy)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("backend", FAST)
def test_non_contiguous_inputs(op, backend, gen):
    case = make_case(op, "clean", gen=gen, h=6, w=8, size=3)
    # same values, transposed storage
    strided = {k: v.transpose(2, 3).contiguous().transpose(2, 3) for k, v in case.args.items()}
    assert not strided["input"].is_contiguous()
    torch.testing.assert_close(case.call(backend, **strided), case.call("reference"))


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("convention", CONVENTIONS)
@pytest.mark.parametrize("backend", ["numba", "torch", "reference"])
def test_gradcheck(op, convention, backend, gen):
    case = make_case(op, convention, gen=gen, n=1, c=2, h=3, w=4, size=3, dilation=1)
    names = list(case.args)

    def fn(*tensors):
        return case.call(backend, **dict(zip(names, tensors)))

    inputs = tuple(v.detach().clone().requires_grad_(True) for v in case.args.values())
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("backend", FAST)
def test_low_precision_inputs_are_supported(backend, gen):
    case = make_case("adacof", "clean", gen=gen, h=5, w=6, size=3, dtype=torch.float32)
    low = {k: v.to(torch.bfloat16) for k, v in case.args.items()}
    out = case.call(backend, **low)
    assert out.dtype == torch.bfloat16
    want = case.call("reference", **{k: v.float() for k, v in low.items()})
    torch.testing.assert_close(out.float(), want, rtol=TOL[torch.bfloat16][0], atol=TOL[torch.bfloat16][1])


def test_autocast_runs_the_op_in_float32(gen):
    case = make_case("adacof", "clean", gen=gen, h=5, w=6, size=3, dtype=torch.float32)
    args = dict(case.args)
    args["weight"] = args["weight"].to(torch.bfloat16)  # as a conv under autocast would produce
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = case.call(**args)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, case.call("reference", weight=args["weight"].float()))


# ----------------------------------------------------------------------------- errors


def _adacof_args(gen, **over):
    a = {"input": torch.rand(1, 3, 9, 10, generator=gen), "weight": torch.rand(1, 9, 5, 6, generator=gen),
         "offset_y": torch.zeros(1, 9, 5, 6), "offset_x": torch.zeros(1, 9, 5, 6)}
    a.update(over)
    return a


def test_error_names_the_wrong_shape(gen):
    a = _adacof_args(gen, offset_x=torch.zeros(1, 9, 5, 7))
    with pytest.raises(VfikitError, match=r"offset_x must have shape \(1, 9, 5, 6\).*got \(1, 9, 5, 7\)"):
        adacof(*a.values(), 2, convention="official")


def test_error_on_input_not_padded_for_the_official_convention(gen):
    a = _adacof_args(gen)
    with pytest.raises(VfikitError, match=r"input must have shape \(1, 3, 7, 8\).*official.*got \(1, 3, 9, 10\)"):
        adacof(*a.values(), 1, convention="official")


def test_error_on_non_square_taps(gen):
    a = _adacof_args(gen, weight=torch.rand(1, 8, 5, 6), offset_y=torch.zeros(1, 8, 5, 6),
                     offset_x=torch.zeros(1, 8, 5, 6))
    with pytest.raises(VfikitError, match="square number of channels"):
        adacof(*a.values(), convention="clean")


def test_error_on_mixed_dtypes(gen):
    a = _adacof_args(gen, offset_y=torch.zeros(1, 9, 5, 6, dtype=torch.float64))
    with pytest.raises(VfikitTypeError, match="one dtype.*float64"):
        adacof(*a.values(), 2, convention="official")


def test_error_on_integer_tensor(gen):
    a = _adacof_args(gen, input=torch.zeros(1, 3, 9, 10, dtype=torch.uint8))
    with pytest.raises(VfikitTypeError, match="floating tensor.*uint8"):
        adacof(*a.values(), 2, convention="official")


def test_error_on_mixed_devices(gen):
    a = _adacof_args(gen, offset_x=torch.zeros(1, 9, 5, 6, device="meta"))
    with pytest.raises(VfikitError, match="one device.*meta"):
        adacof(*a.values(), 2, convention="official")


def test_error_on_wrong_rank_batch_and_dilation(gen):
    a = _adacof_args(gen)
    with pytest.raises(VfikitError, match="must be 4-D"):
        adacof(a["input"][0], *list(a.values())[1:], 2, convention="official")
    with pytest.raises(VfikitError, match="batch sizes differ"):
        adacof(torch.cat([a["input"]] * 2), *list(a.values())[1:], 2, convention="official")
    with pytest.raises(VfikitError, match="dilation must be a positive integer, got 0"):
        adacof(*a.values(), 0, convention="official")


def test_error_on_unknown_convention_and_backend(gen):
    a = _adacof_args(gen)
    with pytest.raises(VfikitError, match="convention must be one of"):
        adacof(*a.values(), 2, convention="cuda")
    with pytest.raises(VfikitError, match="unknown ops backend 'cupy'"):
        adacof(*a.values(), 2, convention="official", backend="cupy")


def test_backend_resolution(monkeypatch):
    monkeypatch.delenv("VFIKIT_OPS_BACKEND", raising=False)
    assert resolve_backend(None, torch.device("cpu")) == "numba"
    assert resolve_backend(None, torch.device("cuda")) == "torch"
    monkeypatch.setenv("VFIKIT_OPS_BACKEND", "reference")
    assert resolve_backend(None, torch.device("cpu")) == "reference"
    assert resolve_backend("torch", torch.device("cpu")) == "torch"  # explicit argument wins
    with pytest.raises(VfikitError, match="CPU only"):
        resolve_backend("numba", torch.device("cuda"))


def test_backward_warp_fast_path_agrees_with_its_one_tap_twin_values_and_gradients():
    """Issue 24: the guided models' warp runs on grid_sample; its twin is AdaCoF's one-tap kernel (the reference
    and the compiled backend), including flows that leave the frame (borders replicate)."""
    from vfikit.ops import backward_warp

    g = torch.Generator().manual_seed(3)
    image = torch.rand(2, 3, 17, 23, generator=g)
    flow = torch.randn(2, 2, 17, 23, generator=g) * 6  # some reads fall outside the frame
    results = {}
    for backend in (None, "reference", "numba"):
        x, f = image.clone().requires_grad_(), flow.clone().requires_grad_()
        out = backward_warp(x, f, backend=backend)
        (out * torch.linspace(0, 1, out.numel()).view_as(out)).sum().backward()
        results[backend] = (out.detach(), x.grad, f.grad)
    for backend in ("reference", "numba"):
        for got, want in zip(results[None], results[backend]):
            torch.testing.assert_close(got, want, atol=2e-4, rtol=1e-4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert backward_warp(image, flow).dtype == torch.float32  # warps stay float32 under autocast
