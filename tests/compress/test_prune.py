"""Sparsity report and compaction: known zeros give known densities; compact == dense-with-zeros."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.helpers import SMALL_ADACOF as SMALL
from vfikit.compress.prune import compact_model
from vfikit.compress.report import format_report, sparsity_report
from vfikit.errors import VfikitError
from vfikit.hub import create_model
from vfikit.sparsity.graph import channel_sets


def _model(arch: str, gen: torch.Generator):
    widths = dict(SMALL)
    if arch == "cdfi":
        widths.update(pyramid=[2, 2, 3, 3, 4], blend=[12, 12, 8])
        model = create_model("cdfi", channels=widths, kernel_size=3, dilation=1)
    elif arch == "guided":  # the flow-guided AdaCoF has the same U-Net and heads, so it compresses alike
        model = create_model("guided_adacof_k5", channels=widths, kernel_size=3)
    else:
        model = create_model("adacof_k5_d1", channels=widths, kernel_size=3)
    with torch.no_grad():  # fan-in scaled weights (activations stay O(1) through the deep net), non-zero biases
        for p in model.parameters():
            fan_in = p[0].numel() if p.dim() > 1 else 1
            p.copy_(torch.randn(p.shape, generator=gen) * (1.4 / fan_in**0.5 if p.dim() > 1 else 0.05))
    return model


def _zero_groups(model, gen, fraction=0.4):
    """Zero the weights+bias of a random fraction of each set's producer channels (all producers at once)."""
    modules = dict(model.named_modules())
    zeroed = {}
    with torch.no_grad():
        for s in channel_sets(model):
            width = modules[s.producers[0]].out_channels
            dead = torch.rand(width, generator=gen) < fraction
            dead[0] = False  # keep at least one channel alive
            for p in s.producers:
                modules[p].weight[dead] = 0
                modules[p].bias[dead] = 0
            zeroed[s.name] = int(dead.sum())
    return zeroed


@pytest.mark.parametrize("arch", ["adacof", "cdfi", "guided"])
def test_compact_model_equals_dense_model_with_zeroed_groups(arch, gen):
    model = _model(arch, gen).eval()
    original = {k: list(v) for k, v in model.model_args["channels"].items()}
    zeroed = _zero_groups(model, gen)
    small, widths = compact_model(model, "group")
    before = sum(p.numel() for p in model.parameters())
    after = sum(p.numel() for p in small.parameters())
    assert after < before
    for s in channel_sets(model):
        key, index = s.spec[0]
        assert widths[key][index] == original[key][index] - zeroed[s.name]
    f0 = torch.rand(1, 3, 37, 45, generator=gen, dtype=torch.float64)
    f1 = torch.rand(1, 3, 37, 45, generator=gen, dtype=torch.float64)
    with torch.no_grad():  # float64: the two networks differ only by summation order
        torch.testing.assert_close(small.double()(f0, f1), model.double()(f0, f1), rtol=1e-10, atol=1e-10)


def test_report_gives_known_densities(gen):
    model = _model("adacof", gen)
    modules = dict(model.named_modules())
    conv = modules["unet.conv2.2"]
    with torch.no_grad():
        conv.weight.view(-1)[: conv.weight.numel() // 4] = 0  # exactly a quarter of the weights
        conv.weight[3:5] = 0  # and two whole output channels (with their bias)
        conv.bias[3:5] = 0
    report = sparsity_report(model)
    layer = next(r for r in report["layers"] if r["name"] == "unet.conv2.2")
    w = conv.weight
    assert layer["density"] == pytest.approx(float(w.ne(0).sum()) / w.numel())
    assert layer["alive_out"] == 10
    s = next(s for s in report["sets"] if s["name"] == "conv2[1]")
    assert s["group"] == 10 and s["width"] == 12
    # CDFI's rule: floor(sqrt(density) * width) for the producer's out and the consumer's in
    implied = int(layer["density"] ** 0.5 * 12)
    assert s["paper_min"] <= implied <= s["paper_max"]
    assert "conv2[1]" in format_report(report)


@pytest.mark.parametrize("strategy", ["paper_min", "paper_max"])
def test_paper_strategies_build_a_working_smaller_model(strategy, gen):
    model = _model("adacof", gen)
    with torch.no_grad():
        for p in model.parameters():
            p[torch.rand(p.shape, generator=gen) < 0.7] = 0  # element-wise sparsity, as OBProxSG-l1 leaves it
    small, _ = compact_model(model, strategy)
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in model.parameters())
    out = small(torch.rand(1, 3, 32, 32, generator=gen), torch.rand(1, 3, 32, 32, generator=gen))
    assert out.shape == (1, 3, 32, 32) and torch.isfinite(out).all()


def test_models_outside_the_adacof_family_are_refused():
    with pytest.raises(VfikitError, match="not an AdaCoF-family model"):
        channel_sets(create_model("overlay"))
    with pytest.raises(VfikitError, match="not an AdaCoF-family model"):
        channel_sets(nn.Conv2d(3, 3, 3))
