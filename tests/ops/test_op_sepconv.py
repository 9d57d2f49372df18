"""sepconv: loop oracle, conventions, goldens."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.conftest import shared_path
from tests.ops.opcases import make_case
from tests.ops.oracles import sepconv_loop
from vfikit.errors import VfikitError
from vfikit.ops import sepconv


@pytest.mark.parametrize("convention", ["official", "clean"])
@pytest.mark.parametrize("size", [1, 3, 5, 7])
@pytest.mark.parametrize("backend", ["reference", "torch", "numba"])
def test_matches_loop_oracle(convention, size, backend, gen):
    case = make_case("sepconv", convention, gen=gen, h=5, w=6, size=size)
    out = case.call(backend)
    a = {k: v.numpy() for k, v in case.args.items()}
    np.testing.assert_allclose(out.numpy(), sepconv_loop(a["input"], a["vertical"], a["horizontal"], convention),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", ["reference", "torch", "numba"])
def test_clean_equals_official_on_replicate_padded_input(backend, gen):
    x = torch.rand(2, 3, 7, 9, generator=gen, dtype=torch.float64)
    kv = torch.randn(2, 5, 7, 9, generator=gen, dtype=torch.float64)
    kh = torch.randn(2, 5, 7, 9, generator=gen, dtype=torch.float64)
    padded = F.pad(x, (2, 2, 2, 2), mode="replicate")
    torch.testing.assert_close(sepconv(x, kv, kh, convention="clean", backend=backend),
                               sepconv(padded, kv, kh, convention="official", backend=backend))


def test_one_hot_kernels_shift_the_image(gen):
    """vertical one-hot at k and horizontal one-hot at l read (y + k - 2, x + l - 2) for n = 5 (no flip)."""
    x = torch.rand(1, 2, 8, 9, generator=gen, dtype=torch.float64)
    kv = torch.zeros(1, 5, 8, 9, dtype=torch.float64)
    kh = torch.zeros_like(kv)
    kv[:, 4] = 1.0  # two rows down
    kh[:, 1] = 1.0  # one column left
    out = sepconv(x, kv, kh, convention="clean")
    torch.testing.assert_close(out[:, :, :-2, 1:], x[:, :, 2:, :-1])


def test_clean_needs_odd_kernel(gen):
    x = torch.rand(1, 1, 5, 5, generator=gen)
    k = torch.rand(1, 4, 5, 5, generator=gen)
    with pytest.raises(VfikitError, match="odd kernel size"):
        sepconv(x, k, k, convention="clean")


@pytest.mark.parametrize("name", ["sepconv_n5", "sepconv_n51"])
@pytest.mark.parametrize("backend", ["reference", "torch", "numba"])
def test_official_goldens(name, backend):
    d = np.load(shared_path("reference", "golden", "ops", f"{name}.npz"))
    t = {k: torch.from_numpy(d[k]).requires_grad_() for k in ("input", "vertical", "horizontal")}
    out = sepconv(t["input"], t["vertical"], t["horizontal"], convention="official", backend=backend)
    np.testing.assert_allclose(out.detach().numpy(), d["output"], rtol=1e-5, atol=1e-5)
    (out * torch.from_numpy(d["grad_output"])).sum().backward()
    for k in t:
        np.testing.assert_allclose(t[k].grad.numpy(), d[f"grad_{k}"], rtol=1e-5, atol=1e-5, err_msg=k)
