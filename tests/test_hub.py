"""Weights: our safetensors format, official formats, tags and the cache. Never touches the network."""

from __future__ import annotations

import pytest
import torch

from vfikit import create_model
from vfikit.errors import VfikitError
from vfikit.hub import cache_dir, read_vfikit_header, save_vfikit
from vfikit.models.convert import ManifestMismatch, convert_official, export_official


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """Every test here runs with downloads forbidden and a private cache directory."""
    monkeypatch.setenv("VFIKIT_OFFLINE", "1")
    monkeypatch.setenv("VFIKIT_CACHE_DIR", str(tmp_path / "cache"))


def perturb(model: torch.nn.Module, seed: int = 0) -> None:
    """Move every weight away from its init so a load that silently skipped tensors would show."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.01)


def test_vfikit_file_round_trip_keeps_weights_convention_and_channel_order(tmp_path):
    model = create_model("edsc_m", convention="official", channel_order="bgr")
    perturb(model)
    path = save_vfikit(model, tmp_path / "edsc_m.vfikit", card={"data": "synthetic", "steps": 3})
    header = read_vfikit_header(path)
    assert header["arch"] == "edsc_m" and header["card"] == {"data": "synthetic", "steps": 3}
    assert header["model_args"]["convention"] == "official" and header["model_args"]["channel_order"] == "bgr"
    loaded = create_model("edsc_m", weights=path)
    assert (loaded.convention, loaded.channel_order, loaded.arbitrary_t) == ("official", "bgr", True)
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b)


def test_vfikit_file_keeps_custom_channel_spec_and_fp16_storage(tmp_path):
    from vfikit.models.channel_spec import load_channel_spec

    widths = load_channel_spec("compressed_adacof", "adacof")
    widths["deconv3"] = [40, 40, 40]
    model = create_model("compressed_adacof_k5_d1", channels=widths)
    perturb(model, 1)
    path = save_vfikit(model, tmp_path / "pruned.safetensors", dtype=torch.float16)
    assert read_vfikit_header(path)["dtype"] == "float16"
    loaded = create_model("compressed_adacof_k5_d1", weights=str(path))
    assert loaded.unet.deconv3[0].out_channels == 40
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert b.dtype == torch.float32
        torch.testing.assert_close(b, a.half().float(), rtol=0, atol=0)


def test_save_vfikit_refuses_to_overwrite_and_checks_arch(tmp_path):
    model = create_model("compressed_adacof_k5_d1")
    path = save_vfikit(model, tmp_path / "m.vfikit")
    before = path.read_bytes()
    with pytest.raises(VfikitError, match="exists"):
        save_vfikit(model, path)
    assert path.read_bytes() == before
    save_vfikit(model, path, force=True, card={"note": "again"})
    assert read_vfikit_header(path)["card"] == {"note": "again"}
    with pytest.raises(VfikitError, match="holds weights for 'compressed_adacof_k5_d1', not 'cdfi'"):
        create_model("cdfi", weights=path)
    bare = torch.nn.Conv2d(1, 1, 1)
    with pytest.raises(VfikitError, match="arch"):
        save_vfikit(bare, tmp_path / "bare.vfikit")


@pytest.mark.parametrize("arch", ["sepconv", "edsc_s", "compressed_adacof_k11_d2", "cdfi", "dsepconv"])
def test_official_export_and_load_round_trip(tmp_path, arch):
    """export_official writes what the authors' code loads; create_model reads it back (official conventions)."""
    model = create_model(arch, convention="official")
    perturb(model, 2)
    path = tmp_path / "official.pth"
    torch.save(export_official(model), path)
    loaded = create_model(arch, weights=path)
    assert loaded.convention == "official"
    assert loaded.channel_order == type(model).official_channel_order
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)


def test_sepconv_accepts_both_key_spellings(tmp_path):
    model = create_model("sepconv", convention="official")
    perturb(model, 3)
    state = export_official(model)  # net* spelling
    assert next(iter(state)).startswith("netConv1")
    module_spelling = {k.replace("net", "module", 1): v for k, v in state.items()}
    a = convert_official(model, state)
    b = convert_official(model, module_spelling)
    assert list(a) == list(b) == list(model.state_dict())


def test_wrong_architecture_is_reported_with_the_one_it_fits(tmp_path):
    compact = create_model("compressed_adacof_k5_d1", convention="official")
    path = tmp_path / "compressed_adacof_F_5_D_1.pth"
    torch.save(export_official(compact), path)
    with pytest.raises(ManifestMismatch, match="It fits compressed_adacof_k5_d1") as info:
        create_model("adacof_k5_d1", weights=path)
    assert "shape mismatches" in str(info.value)


def test_reordered_or_incomplete_checkpoints_are_refused(tmp_path):
    model = create_model("compressed_adacof_k5_d1", convention="official")
    state = export_official(model)["state_dict"]
    keys = list(state)
    swapped = dict(state)
    swapped = {k: swapped[k] for k in [keys[1], keys[0], *keys[2:]]}
    with pytest.raises(ManifestMismatch, match="different order"):
        convert_official(model, {"state_dict": swapped})
    missing = {k: v for k, v in state.items() if k != keys[-1]}
    with pytest.raises(ManifestMismatch, match="missing 1 keys"):
        convert_official(model, {"state_dict": missing})
    with pytest.raises(VfikitError, match="'model_state'"):
        convert_official(create_model("edsc_s", convention="official"), {"state_dict": state})


class Unsafe:
    """A class torch.load(weights_only=True) refuses to unpickle."""


def test_unreadable_and_missing_files(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"this is not a checkpoint")
    for content in (b"this is not a checkpoint", b"e" * 64):  # torch said: `... : 101`
        junk.write_bytes(content)
        with pytest.raises(VfikitError, match="is not a PyTorch or vfikit weights file"):
            create_model("cdfi", weights=junk)
    torch.save({"net": Unsafe()}, junk)  # torch refuses it with a dozen lines of advice
    with pytest.raises(VfikitError, match=r"holds Python objects \(tests.test_hub.Unsafe\)") as info:
        create_model("cdfi", weights=junk)
    assert "\n" not in str(info.value)
    junk.write_bytes(b"PK\x03\x04" + b"x" * 100)  # a damaged zip archive
    with pytest.raises(VfikitError, match="cannot read .* as PyTorch weights") as info:
        create_model("cdfi", weights=junk)
    assert "\n" not in str(info.value)
    with pytest.raises(VfikitError, match="no such file, and not a known tag"):
        create_model("cdfi", weights=tmp_path / "absent.pth")
    with pytest.raises(VfikitError, match=r"'nope' for cdfi: no such file, and not a known tag \(tags: official\)"):
        create_model("cdfi.nope")


def test_training_checkpoint_dict_is_accepted(tmp_path):
    model = create_model("compressed_adacof_k5_d1", convention="official")
    perturb(model, 4)
    path = tmp_path / "step_100.pt"
    torch.save({"model": model.state_dict(), "arch": "compressed_adacof_k5_d1", "model_args": model.model_args,
                "step": 100}, path)
    loaded = create_model("compressed_adacof_k5_d1", weights=path)
    assert loaded.convention == "official"
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))


def test_tags_resolve_from_the_cache_without_network(tmp_path):
    model = create_model("cdfi", convention="official")
    perturb(model, 5)
    cached = cache_dir() / "cdfi.official" / "CDFI_adacof.pth"
    cached.parent.mkdir(parents=True)
    torch.save(export_official(model), cached)
    loaded = create_model("cdfi.official")
    assert loaded.vfikit_weights == "cdfi.official"
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))


def test_tags_that_need_a_download_fail_clearly_offline():
    with pytest.raises(VfikitError, match="VFIKIT_OFFLINE"):
        create_model("sepconv.official")
    with pytest.raises(VfikitError, match="Google Drive"):
        create_model("edsc_s.official")


def test_create_model_answers_to_its_old_names():
    import vfikit
    import vfikit.hub
    import vfikit.registry

    assert vfikit.create_model is vfikit.hub.create_model is vfikit.registry.create_model
    assert vfikit.registry.get_entry("overlay").name == "overlay"
    from vfikit.engine import checkpoint

    # the one trained-weights key set: checkpoints are trained weights plus training state
    assert checkpoint.CHECKPOINT_KEYS[:3] == vfikit.hub.TRAINED_WEIGHTS_KEYS == ("model", "arch", "model_args")
    assert {"ema", "config_args", "best_val"} <= set(checkpoint.CHECKPOINT_KEYS)


def test_replace_vfikit_card_keeps_tensors_and_metadata(tmp_path):
    from vfikit.hub import replace_vfikit_card

    model = create_model("edsc_m")
    perturb(model, 2)
    path = save_vfikit(model, tmp_path / "m.vfikit", card={"old": 1}, dtype=torch.float16)
    before = read_vfikit_header(path)
    replace_vfikit_card(path, {"old": 1, "current": {"psnr": 30.5}})
    after = read_vfikit_header(path)
    assert after["card"] == {"old": 1, "current": {"psnr": 30.5}}
    assert {k: v for k, v in after.items() if k != "card"} == {k: v for k, v in before.items() if k != "card"}
    loaded = create_model("edsc_m", weights=path)
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        torch.testing.assert_close(b, a.half().float(), rtol=0, atol=0)
    with pytest.raises(VfikitError, match="JSON"):
        replace_vfikit_card(path, {"bad": object()})
    assert read_vfikit_header(path)["card"] == after["card"]  # a failed rewrite leaves the file as it was
    (tmp_path / "plain.bin").write_bytes(b"not a model")
    with pytest.raises(VfikitError):
        replace_vfikit_card(tmp_path / "plain.bin", {})


def test_create_model_reads_names_vfikit_files_and_trained_weights(tmp_path):
    """One door: a registry name, a vfikit file or a trained-weights file (written by hub.trained_weights)."""
    from vfikit.hub import load_trained_model, save_trained_weights

    model = create_model("guided_adacof_k5")
    perturb(model, 5)
    vfk = save_vfikit(model, tmp_path / "g.vfikit")
    ckpt = save_trained_weights(tmp_path / "best.pt", model, step=3)
    assert set(torch.load(ckpt, weights_only=True)) == {"model", "arch", "model_args", "step"}
    for source in (vfk, ckpt, str(ckpt)):
        loaded = create_model(source)
        assert loaded.vfikit_arch == "guided_adacof_k5" and not loaded.training
        assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                 load_trained_model(ckpt).state_dict().values()))  # old name
    # build arguments replace the recorded ones, for files as for names
    for source in (vfk, ckpt, "guided_adacof_k5"):
        assert create_model(source, flow={"init_scale": 1}).guide.config.init_scale == 1
    assert create_model(ckpt).guide.config.init_scale == 2
    with pytest.raises(VfikitError, match="weights file not found"):
        create_model(tmp_path / "missing_model_name")
    official = tmp_path / "official.pth"
    torch.save(export_official(create_model("cdfi", convention="official")), official)
    with pytest.raises(VfikitError, match=r"cannot tell which model .*official.pth is for"):
        create_model(official)



def test_non_finite_weights_are_refused_on_load(tmp_path):
    """Issue 25 defect 3: 4,000 bytes of 0xFF in a vfikit file are ~1,000 NaN float32 weights; they loaded
    and the model wrote black frames. Every weights format is checked."""
    from vfikit.hub import architecture_of

    model = create_model("compressed_adacof_k5_d1")
    path = save_vfikit(model, tmp_path / "m.vfikit")
    data = bytearray(path.read_bytes())
    start = len(data) // 2
    data[start:start + 4000] = b"\xff" * 4000
    path.write_bytes(bytes(data))
    assert architecture_of(path) == "compressed_adacof_k5_d1"  # the header is intact
    with pytest.raises(VfikitError, match=r"m.vfikit holds non-finite weights \(\d+ NaN or infinite values"):
        create_model("compressed_adacof_k5_d1", weights=path)
    state = model.state_dict()
    next(v for v in state.values() if v.is_floating_point()).view(-1)[0] = float("inf")
    ckpt = tmp_path / "best.pt"
    torch.save({"model": state, "arch": "compressed_adacof_k5_d1", "model_args": model.model_args}, ckpt)
    with pytest.raises(VfikitError, match="best.pt holds non-finite weights"):
        create_model("compressed_adacof_k5_d1", weights=ckpt)


def test_refused_pickles_say_they_hold_python_objects_whatever_torch_says(tmp_path):
    """Issue 25: a pickle naming a module torch blocklists (os, sys, posix, nt) got torch's long advice cut
    at 160 characters instead of the documented "holds Python objects"."""
    path = tmp_path / "evil.pt"
    # GLOBAL os.system then REDUCE: never executed (torch refuses it before building anything)
    path.write_bytes(b"\x80\x02cos\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03.")
    with pytest.raises(VfikitError, match=r"evil.pt holds Python objects \(os.system\) besides tensors.*"
                                          r"save only the state dict$") as info:
        create_model("cdfi", weights=path)
    assert "\n" not in str(info.value) and "PyTorch 2.6" not in str(info.value)


def test_a_damaged_header_is_called_damaged(tmp_path):
    """Issue 25: a vfikit file whose first bytes were overwritten was reported as "cannot tell which model"."""
    from vfikit.hub import architecture_of

    path = save_vfikit(create_model("compressed_adacof_k5_d1"), tmp_path / "m.vfikit")
    data = path.read_bytes()
    path.write_bytes(b"\xff" * 16 + data[16:])
    with pytest.raises(VfikitError, match=r"m.vfikit is damaged or not a weights file"):
        architecture_of(path)
    path.write_bytes(data[:8] + b"{" + b"\xff" * 40 + data[49:])  # length intact, metadata JSON broken
    with pytest.raises(VfikitError, match=r"m.vfikit is damaged"):
        architecture_of(path)
