"""ONNX: the guided models' network exported and run by ONNX Runtime gives the torch outputs."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import shifted_pair
from vfikit.cli import main
from vfikit.errors import VfikitError
from vfikit.registry import create_model

ort = pytest.importorskip("onnxruntime", reason='ONNX Runtime is an extra: pip install "vfikit[onnx]"')
pytest.importorskip("onnx", reason='ONNX export needs the onnx package: pip install "vfikit[onnx]"')

from vfikit.models.onnx_network import export_onnx, use_onnx_runtime  # noqa: E402


def _with_live_heads(name: str, **kw):
    torch.manual_seed(0)
    model = create_model(name, **kw).eval()
    with torch.no_grad():
        for module in model.heads.values():
            module[-1].weight.normal_(0, 0.05)
    return model


@pytest.mark.parametrize(("name", "kw", "t"), [("guided_adacof_k5", {}, 0.5),
                                               ("guided_dsepconv", {"net_downscale": 2}, 0.3)])
def test_onnx_runtime_backend_equals_torch(name, kw, t):
    model = _with_live_heads(name, **kw)
    f0, _, f1 = shifted_pair(6, -2, h=50, w=75)
    with torch.no_grad():
        ref = model(f0, f1, t=t)
        use_onnx_runtime(model)
        fast = model(f0, f1, t=t)
    assert model.onnx_network is not None
    assert (fast - ref).abs().max() < 1e-4
    assert (ref - create_model("flow_dis")(f0, f1, t=t)).abs().max() > 1e-3  # the heads do matter here


def test_export_command_writes_a_file_ort_runs_and_refuses_what_it_cannot(tmp_path):
    model = _with_live_heads("guided_adacof_k5")
    path = export_onnx(model, tmp_path / "net.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inp = torch.rand(2, 26, 64, 96)  # another batch and size than the trace
    (heads,) = session.run(None, {"unet_input": inp.numpy()})
    with torch.no_grad():
        trunk, _ = model.unet(inp)
        ref = torch.cat([h(trunk) for h in model.heads.values()], 1)
    assert heads.shape == (2, 151, 64, 96) and abs(torch.from_numpy(heads) - ref).max() < 1e-4
    out = tmp_path / "shipped.onnx"
    assert main(["export", "guided_adacof_k5.vfikit", str(out)]) == 0 and out.stat().st_size > 1_000_000
    assert main(["export", "guided_adacof_k5.vfikit", str(out)]) == 2  # exists: needs --force
    assert main(["export", "guided_dsepconv", str(tmp_path / "u.onnx")]) == 2  # untrained
    assert main(["export", "cdfi", str(tmp_path / "c.onnx"), "--allow-untrained"]) == 2  # not a guided model
    with pytest.raises(VfikitError, match="encoder"):
        export_onnx(create_model("guided_cdfi"), tmp_path / "g.onnx")
