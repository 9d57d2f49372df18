"""--backend onnx: the video tool runs a guided model's network with ONNX Runtime, with the same frames."""

from __future__ import annotations

import numpy as np
import pytest

from vfikit.errors import VfikitError
from vfikit.video.defaults import build_interpolator

pytest.importorskip("onnxruntime", reason='ONNX Runtime is an extra: pip install "vfikit[onnx]"')
pytest.importorskip("onnx", reason='ONNX export needs the onnx package: pip install "vfikit[onnx]"')


@pytest.mark.slow
def test_onnx_backend_gives_the_torch_frames_and_refuses_what_it_cannot_run():
    import torch

    torch.manual_seed(0)
    f0 = torch.rand(3, 40, 56)
    f1 = torch.roll(f0, (2, 3), (1, 2))
    torch_ip = build_interpolator("guided_adacof_k5.vfikit", device="cpu", precision="fp32")  # (auto: bf16 here)
    onnx_ip = build_interpolator("guided_adacof_k5.vfikit", device="cpu", backend="onnx")
    assert onnx_ip.model.onnx_network is not None and torch_ip.model.onnx_network is None
    a, b = torch_ip(f0, f1), onnx_ip(f0, f1)
    assert float((a - b).abs().max()) < 1e-4 and not np.allclose(a.numpy(), ((f0 + f1) / 2).numpy(), atol=1e-3)
    with pytest.raises(VfikitError, match="backend"):
        build_interpolator("guided_adacof_k5.vfikit", device="cpu", backend="tensorrt")
    with pytest.raises(VfikitError, match="fp32"):
        build_interpolator("guided_adacof_k5.vfikit", device="cpu", precision="bf16", backend="onnx")
    with pytest.raises(VfikitError, match="guided"):
        build_interpolator("flow_dis", device="cpu", backend="onnx")
