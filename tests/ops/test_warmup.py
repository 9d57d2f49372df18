"""Compiling ahead (``python -m vfikit.ops.warmup``) covers exactly the kernels (and signatures) the default
model then calls."""

from __future__ import annotations

import pytest
import torch

from vfikit.hub import create_model
from vfikit.inference import Interpolator
from vfikit.ops import guided_synthesis, numba_cpu, splat, warmup


def _signatures() -> dict[str, set]:
    kernels = {"consistency": splat._consistency_loop, "splat_motion": splat._splat_motion_loop,
               "deform_fwd": numba_cpu._deform_fwd, "guided_rows": guided_synthesis._guided_rows}
    return {name: set(kernel.signatures) for name, kernel in kernels.items()}


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_warmup_covers_every_kernel_signature_of_the_default(precision):
    warmup.compile_default_kernels(bf16_heads=precision == "bf16")
    before = _signatures()
    model = create_model("guided_adacof_k5_fast").eval()
    ip = Interpolator(model, device="cpu", precision=precision, allow_untrained=True)
    frame0, frame1 = torch.rand(1, 3, 70, 90), torch.rand(1, 3, 70, 90)
    ip(frame0, frame1)
    after = _signatures()
    assert all(after[name] == before[name] for name in before), {n: after[n] - before[n] for n in before}
