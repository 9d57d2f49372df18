"""Model zoo: parametrized over the registered kernel-based architectures."""

from __future__ import annotations

import json

import pytest
import torch

from vfikit import create_model, list_models
from vfikit.errors import VfikitError
from vfikit.hub import save_vfikit
from vfikit.models.adacof import AdaCoF
from vfikit.models.blocks import HetConv2d
from vfikit.models.catalog import get_entry
from vfikit.models.channel_spec import load_channel_spec, packaged_specs, save_channel_spec

KERNEL_FAMILIES = {"sepconv", "dsepconv", "edsc", "adacof", "cdfi"}
ARCHS = [n for n in list_models() if get_entry(n).family in KERNEL_FAMILIES]


def frames(b: int, h: int, w: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, h, w, generator=g), torch.rand(b, 3, h, w, generator=g)


def test_all_nine_architectures_are_registered_with_their_exact_parameter_counts():
    # the official counts (issue 3; the DSepConv reconstruction from the spec) live in the registry
    assert len(ARCHS) == 9 and all(get_entry(n).params for n in ARCHS)


@pytest.mark.parametrize("name", ARCHS)
@pytest.mark.parametrize("convention", ["clean", "official"])
def test_parameter_count_is_exact_in_both_conventions(name, convention):
    with torch.device("meta"):
        model = create_model(name, convention=convention)
    assert sum(p.numel() for p in model.parameters()) == get_entry(name).params


ZOO = list_models()


def test_the_catalog_holds_every_family_and_no_test_model():
    # test models are registered for one test only (the tiny_models and models fixtures)
    assert all(get_entry(n).factory.__module__.startswith("vfikit.models.") for n in ZOO)
    assert {get_entry(n).family for n in ZOO} == KERNEL_FAMILIES | {"guided", "classical"}


@pytest.mark.parametrize("name", ZOO)
def test_every_registered_model_matches_its_entry_and_interpolates(name):
    """Every family (kernel, guided, classical): recorded count, arbitrary_t as the model says, a forward pass."""
    entry = get_entry(name)
    with torch.device("meta"):
        meta = create_model(name)
    if entry.params is not None:
        assert sum(p.numel() for p in meta.parameters()) == entry.params
    assert entry.arbitrary_t == meta.arbitrary_t  # what the built model says (EDSC: per instance)
    if entry.family in KERNEL_FAMILIES:
        return  # their forward pass runs in test_forward_odd_size_shape_aux_determinism_and_t
    model = create_model(name)
    f0, f1 = frames(1, 32, 40)
    with torch.no_grad():
        out = model(f0, f1)
        assert out.shape == f0.shape and torch.isfinite(out).all()
        if entry.arbitrary_t:
            assert model(f0, f1, 0.25).shape == f0.shape


def _check_aux(name: str, model, aux: dict, b: int, hp: int, wp: int) -> None:
    family = get_entry(name).family
    kernels = aux["kernels"]
    assert len(kernels) == 2
    if family in ("adacof", "cdfi"):
        taps = model.kernel_size ** 2
        for weight, oy, ox in kernels:
            for t in (weight, oy, ox):
                assert t.shape == (b, taps, hp, wp)
            torch.testing.assert_close(weight.sum(1), torch.ones(b, hp, wp))  # softmax over taps
        assert aux["occlusion"].shape == (b, 1, hp, wp)
        assert bool(((aux["occlusion"] > 0) & (aux["occlusion"] < 1)).all())
        assert ("blend" in aux) == (family == "cdfi")
    elif family in ("dsepconv", "edsc"):
        n = model.kernel_size
        for v, h, oy, ox, mask in kernels:
            assert v.shape == h.shape == (b, n, hp, wp)
            assert oy.shape == ox.shape == mask.shape == (b, n * n, hp, wp)
    else:
        for v, h in kernels:
            assert v.shape == h.shape == (b, model.kernel_size, hp, wp)


@pytest.mark.parametrize(("name", "convention"), [(n, "clean") for n in ARCHS] + [("dsepconv", "official")])
def test_forward_odd_size_shape_aux_determinism_and_t(name, convention):
    """Odd size, batch of 2. (The official convention of the eight other architectures runs in the
    golden tests, on a 70 x 100 crop.)"""
    model = create_model(name, convention=convention)
    f0, f1 = frames(2, 21, 27)
    with torch.no_grad():
        out, aux = model(f0, f1, return_aux=True)
        again = model(f0, f1, t=0.5)  # eval mode is deterministic, and None means t = 0.5
    assert out.shape == (2, 3, 21, 27)
    assert out.dtype == torch.float32
    assert bool(torch.isfinite(out).all())
    assert torch.equal(out, again)
    _check_aux(name, model, aux, 2, 32, 32)  # padded working size: the next multiple of 32
    if not get_entry(name).arbitrary_t:
        with pytest.raises(VfikitError, match=r"t=0\.3"):
            model(f0, f1, t=0.3)


@pytest.mark.parametrize("name", ARCHS)
def test_every_parameter_gets_a_gradient_in_the_clean_convention(name):
    torch.manual_seed(0)
    model = create_model(name).train()
    with torch.no_grad():  # no dead ReLUs: a narrow head (EDSC's bias head has 3 channels) can die on a tiny input
        for key, p in model.named_parameters():
            if key.endswith("bias") and not key.startswith("synthesis."):  # GridNet's PReLU slopes need negatives
                p.add_(0.1)
    f0, f1 = frames(1, 32, 32, seed=1)
    out = model(f0, f1, t=0.25) if model.arbitrary_t else model(f0, f1)
    proj = torch.randn(out.shape, generator=torch.Generator().manual_seed(2))
    (out * proj).sum().backward()
    for key, p in model.named_parameters():
        assert p.grad is not None, f"{key} got no gradient"
        assert bool(torch.isfinite(p.grad).all()), f"{key} has a non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{key} has an all-zero gradient"


def test_edsc_m_takes_time_per_sample():
    model = create_model("edsc_m")
    assert model.arbitrary_t and get_entry("edsc_m").arbitrary_t
    f0, f1 = frames(2, 32, 32, seed=4)
    with torch.no_grad():
        a = model(f0, f1, t=0.25)
        b = model(f0, f1, t=torch.tensor([0.25, 0.75]))
        c = model(f0[1:], f1[1:], t=0.75)
        d = model(f0, f1)
    torch.testing.assert_close(b[:1], a[:1])
    torch.testing.assert_close(b[1:], c)
    assert not torch.allclose(a, d)  # None means 0.5, which differs from 0.25
    with pytest.raises(VfikitError, match=r"1\.5"):
        model(f0, f1, t=1.5)


def test_bgr_model_flips_channels_internally():
    """(SepConv and EDSC run in BGR in the golden tests; here the mean subtraction of AdaCoF too.)"""
    rgb = create_model("compressed_adacof_k5_d1", channel_order="rgb")
    bgr = create_model("compressed_adacof_k5_d1", channel_order="bgr")
    bgr.load_state_dict(rgb.state_dict())
    f0, f1 = frames(1, 32, 32, seed=5)
    with torch.no_grad():
        expected = rgb(f0.flip(1), f1.flip(1)).flip(1)
        torch.testing.assert_close(bgr(f0, f1), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ARCHS)
def test_vfikit_file_round_trip(name, tmp_path):
    """Our weight format restores weights and every build argument for each architecture."""
    model = create_model(name, channel_order="bgr")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)
    path = save_vfikit(model, tmp_path / f"{name}.vfikit", card={"test": True}, dtype=torch.float16)
    loaded = create_model(name, weights=path)
    assert loaded.model_args == model.model_args
    assert (loaded.convention, loaded.channel_order) == ("clean", "bgr")
    for (key, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a.half().float(), b), key


def test_sepconv_paper_padding_mode():
    model = create_model("sepconv", convention="official", official_padding="paper")
    f0, f1 = frames(1, 30, 41, seed=7)
    with torch.no_grad():
        out, aux = model(f0, f1, return_aux=True)
    assert out.shape == (1, 3, 30, 41)
    assert aux["kernels"][0][0].shape[-2:] == (128, 128)  # 25 px each side, then right/bottom to 128
    with pytest.raises(VfikitError, match="'fancy'"):
        create_model("sepconv", official_padding="fancy")


def test_model_arguments_are_checked():
    with pytest.raises(VfikitError, match="'sideways'"):
        create_model("cdfi", convention="sideways")
    with pytest.raises(VfikitError, match="'rbg'"):
        create_model("sepconv", channel_order="rbg")
    with pytest.raises(VfikitError, match="4"):
        create_model("sepconv", kernel_size=4)
    with pytest.raises(VfikitError, match="hetconv"):
        create_model("dsepconv", hetconv=True)
    with pytest.raises(VfikitError, match="multiple=True, got multiple=False"):
        create_model("edsc_m", multiple=False)
    model = create_model("adacof_k5_d1")
    with pytest.raises(VfikitError, match=r"\(1, 3, 8, 8\) vs \(1, 3, 8, 9\)"):
        model(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 9))
    with pytest.raises(VfikitError, match="shape"):
        model(torch.rand(3, 8, 8), torch.rand(3, 8, 8))


def test_official_adacof_refuses_frames_too_small_to_reflect():
    model = create_model("compressed_adacof_k5_d1", convention="official")
    with pytest.raises(VfikitError, match="Interpolator"):
        model(torch.rand(1, 3, 12, 40), torch.rand(1, 3, 12, 40))
    clean = create_model("compressed_adacof_k5_d1")
    with torch.no_grad():
        assert clean(torch.rand(1, 3, 12, 40), torch.rand(1, 3, 12, 40)).shape == (1, 3, 12, 40)


def test_hetconv_dense_equivalent():
    torch.manual_seed(0)
    het = HetConv2d(8, 12, groups=4)
    x = torch.randn(2, 8, 9, 7)
    torch.testing.assert_close(het.dense_equivalent()(x), het(x), rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------------------------
# Channel specs


def test_packaged_specs_build_the_compressed_models():
    assert {"compressed_adacof", "cdfi"} <= set(packaged_specs())
    widths = load_channel_spec("compressed_adacof", "adacof")
    model = AdaCoF(kernel_size=5, dilation=1, channels=widths)
    assert sum(p.numel() for p in model.parameters()) == get_entry("compressed_adacof_k5_d1").params
    assert model.unet.conv5[4].out_channels == widths["conv5"][-1] == 121


def test_channel_spec_round_trip_and_errors(tmp_path):
    widths = load_channel_spec("compressed_adacof", "adacof")
    widths["deconv2"] = [40, 41, 42]
    path = save_channel_spec(tmp_path / "mine.json", widths, family="adacof", name="mine")
    assert json.loads(path.read_text())["widths"]["deconv2"] == [40, 41, 42]
    model = AdaCoF(channels=str(path))
    assert model.unet.deconv2[4].out_channels == 42 and model.unet.upsample2[1].in_channels == 42
    with pytest.raises(VfikitError, match="exists"):
        save_channel_spec(path, widths, family="adacof", name="mine")
    bad = dict(widths, upsample3=[93])
    with pytest.raises(VfikitError, match="upsample3 outputs 93 channels but it is added to conv3's output of 94"):
        AdaCoF(channels=bad)
    with pytest.raises(VfikitError, match="missing modules"):
        AdaCoF(channels={k: v for k, v in widths.items() if k != "occlusion"})
    with pytest.raises(VfikitError, match=r"'conv1' widths must be positive integers, got \[24, 0, 24\]"):
        AdaCoF(channels=dict(widths, conv1=[24, 0, 24]))
    with pytest.raises(VfikitError, match="neither a packaged spec"):
        AdaCoF(channels="no_such_spec")


def test_compact_model_equals_dense_model_with_zeroed_channels():
    """The spec-built compact network computes what the dense network computes when the pruned
    channels are zero: this is the contract a pruning tool relies on."""
    torch.manual_seed(0)
    compact = create_model("compressed_adacof_k5_d1")
    dense = create_model("adacof_k5_d1")
    state = {k: torch.zeros_like(v) for k, v in dense.state_dict().items()}
    for key, small in compact.state_dict().items():
        idx = tuple(slice(0, n) for n in small.shape)
        state[key][idx] = small
    dense.load_state_dict(state)
    f0, f1 = frames(1, 32, 32, seed=6)
    with torch.no_grad():
        torch.testing.assert_close(dense(f0, f1), compact(f0, f1), rtol=1e-5, atol=1e-5)
