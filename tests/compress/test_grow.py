"""Stage II: growing a trained compressed AdaCoF into CDFI keeps what the AdaCoF part computes."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import SMALL_ADACOF as SMALL
from vfikit.compress.grow import grow_to_cdfi
from vfikit.errors import VfikitError
from vfikit.hub import create_model
from vfikit.models.catalog import get_entry


def _source(gen, widths=None):
    model = create_model("compressed_adacof_k5_d1", **({"channels": widths} if widths else {}))
    with torch.no_grad():
        for p in model.parameters():
            fan_in = p[0].numel() if p.dim() > 1 else 1
            p.copy_(torch.randn(p.shape, generator=gen) * (1.4 / fan_in**0.5 if p.dim() > 1 else 0.1))
    return model.eval()


def test_grown_cdfi_computes_the_adacof_warp_when_it_is_wider_everywhere(gen):
    source = _source(gen, SMALL).double()
    wider = {k: [v + 2 for v in vs] for k, vs in SMALL.items()}
    wider.update(pyramid=[4, 8, 12, 16, 20], blend=[14, 14, 10])
    cdfi = grow_to_cdfi(source, blend_bias=-60.0, unused_tap_logit=-200.0, channels=wider).eval()
    assert type(cdfi).__name__ == "CDFI" and cdfi.kernel_size == 11 and cdfi.dilation == 2
    f0 = torch.rand(1, 3, 37, 45, generator=gen, dtype=torch.float64)
    f1 = torch.rand(1, 3, 37, 45, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        want, aux_s = source(f0, f1, return_aux=True)
        got, aux_c = cdfi(f0, f1, return_aux=True)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(aux_c["occlusion"], aux_s["occlusion"], rtol=1e-9, atol=1e-9)
    # the 25 source taps sit on the centre 5x5 of CDFI's 11x11 grid (every other tap): weights there, ~0 elsewhere
    w = aux_c["kernels"][0][0].view(1, 11, 11, *aux_c["kernels"][0][0].shape[-2:])
    inner = w[:, 3:8, 3:8]
    assert inner.sum(dim=(1, 2)).min() > 1 - 1e-9
    torch.testing.assert_close(inner.reshape(1, 25, *w.shape[-2:]), aux_s["kernels"][0][0])


def test_grow_into_the_official_cdfi_widths(gen):
    source = _source(gen)
    cdfi = grow_to_cdfi(source)
    assert sum(p.numel() for p in cdfi.parameters()) == get_entry("cdfi").params
    f0, f1 = torch.rand(1, 3, 32, 48, generator=gen), torch.rand(1, 3, 32, 48, generator=gen)
    with torch.no_grad():
        out, aux = cdfi.eval()(f0, f1, return_aux=True)
    assert out.shape == f0.shape and torch.isfinite(out).all()
    assert aux["blend"].max() < 0.02  # the GridNet path starts almost switched off


def test_grow_refuses_what_it_cannot_map(gen):
    with pytest.raises(VfikitError, match="clean convention"):
        grow_to_cdfi(create_model("compressed_adacof_k5_d1", convention="official"))
    with pytest.raises(VfikitError, match="needs an AdaCoF"):
        grow_to_cdfi(create_model("cdfi"))


def test_cli_grows_a_training_checkpoint_into_a_cdfi_init(tmp_path, gen, capsys):
    from vfikit.cli import main

    source = _source(gen)
    torch.save({"model": source.state_dict(), "arch": "compressed_adacof_k5_d1", "model_args": {}}, tmp_path / "s.pt")
    out = tmp_path / "cdfi_init.pt"
    assert main(["compress", "--grow-cdfi", str(tmp_path / "s.pt"), "--out", str(out)]) == 0
    model = create_model("cdfi", weights=str(out))  # usable as model.init of a cdfi training config
    assert sum(p.numel() for p in model.parameters()) == get_entry("cdfi").params
    assert main(["compress", "--grow-cdfi", str(tmp_path / "s.pt"), "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
