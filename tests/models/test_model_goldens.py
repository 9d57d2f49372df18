"""Official-checkpoint compatibility: manifests and golden outputs of ../shared/reference.

For every golden: regenerate the deterministic weights (README section 4), save them in the
official file format of that family to tmp_path, load that file through ``create_model(arch,
weights=path)`` (the path a real checkpoint takes), run the official pre/post-processing and compare
with ``outputs/<golden>.npy`` at rtol = atol = 1e-5 outside the fragile mask.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

from tests.models.golden_models import (
    GOLDEN,
    MANIFESTS,
    golden_output,
    golden_state_dict,
    input_uint8,
    load_manifest,
    skip_reason,
    to_tensor,
)
from vfikit import create_model

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")

# arch -> its manifest in ../shared/reference/manifests
MANIFEST_OF = {
    "sepconv": "sepconv",
    "dsepconv": "dsepconv_reconstructed",
    "edsc_s": "edsc_s",
    "edsc_m": "edsc_m",
    "adacof_k5_d1": "adacof_F5_D1",
    "adacof_k11_d2": "adacof_F11_D2",
    "compressed_adacof_k5_d1": "compressed_adacof_F5_D1",
    "compressed_adacof_k11_d2": "compressed_adacof_F11_D2",
    "cdfi": "cdfi_adacof",
}

# golden -> (arch, manifest, time t, channel order of the golden array)
GOLDENS = {
    "sepconv": ("sepconv", "sepconv", None, "bgr"),
    "edsc_s": ("edsc_s", "edsc_s", None, "bgr"),
    "edsc_m_t0.5": ("edsc_m", "edsc_m", 0.5, "bgr"),
    "edsc_m_t0.25": ("edsc_m", "edsc_m", 0.25, "bgr"),
    "adacof_F5_D1": ("adacof_k5_d1", "adacof_F5_D1", None, "rgb"),
    "adacof_F11_D2": ("adacof_k11_d2", "adacof_F11_D2", None, "rgb"),
    "compressed_adacof_F5_D1": ("compressed_adacof_k5_d1", "compressed_adacof_F5_D1", None, "rgb"),
    "compressed_adacof_F11_D2": ("compressed_adacof_k11_d2", "compressed_adacof_F11_D2", None, "rgb"),
    "cdfi_adacof": ("cdfi", "cdfi_adacof", None, "rgb"),
}


@pytest.mark.parametrize("arch", sorted(MANIFEST_OF))
def test_official_manifest_equals_shared_manifest(arch):
    with torch.device("meta"):
        model = create_model(arch, convention="official")
    ours = model.official_manifest()
    assert ours == load_manifest(MANIFEST_OF[arch])
    total = json.loads((MANIFESTS / f"{MANIFEST_OF[arch]}.json").read_text())["total_params"]
    assert sum(int(np.prod(s)) for _, s in ours) == total


def write_official_file(arch: str, manifest: str, path) -> None:
    """Save the golden weights the way the authors' files hold them (not through our code)."""
    state = golden_state_dict(manifest)
    if arch == "sepconv":  # network-*.pytorch: bare state dict, keys spelled module*
        obj = {re.sub(r"^net", "module", k): v for k, v in state.items()}
    elif arch.startswith("edsc"):  # EDSC .ckpt
        obj = {"model_state": state}
    else:  # AdaCoF-pytorch / CDFI .pth
        obj = {"state_dict": state, "epoch": 50}
    torch.save(obj, path)


def run_official_pipeline(model, arch: str, t: float | None) -> tuple[torch.Tensor, dict]:
    """Feed the golden crops as the official scripts do; returns our RGB output (1, 3, 70, 100) and aux."""
    a, b = input_uint8()
    scaling = "mul" if arch == "sepconv" else "div"  # sepconv-slomo multiplies by float32(1/255)
    f0, f1 = to_tensor(a, scaling), to_tensor(b, scaling)
    with torch.no_grad():
        return model(f0, f1, t=t, return_aux=True)


@pytest.fixture(scope="module")
def golden_runs(tmp_path_factory):
    """(model, output in the golden's channel order, aux) per golden, computed on first use."""
    models: dict[str, torch.nn.Module] = {}
    cache: dict[str, tuple] = {}

    def get(name: str):
        if name not in cache:
            arch, manifest, t, order = GOLDENS[name]
            if arch not in models:
                path = tmp_path_factory.mktemp("official") / f"{arch}.weights"
                write_official_file(arch, manifest, path)
                models[arch] = create_model(arch, weights=path)
            out, aux = run_official_pipeline(models[arch], arch, t)
            cache[name] = (models[arch], out.flip(1) if order == "bgr" else out, aux)
        return cache[name]

    return get


@pytest.mark.parametrize("name", list(GOLDENS))
def test_golden_output_through_the_official_file_loader(name, golden_runs):
    arch = GOLDENS[name][0]
    model, out, _ = golden_runs(name)
    assert model.convention == "official"
    assert model.channel_order == ("bgr" if arch in ("sepconv", "edsc_s", "edsc_m") else "rgb")
    gold, fragile = golden_output(name)
    ours = out.numpy()
    np.testing.assert_allclose(ours[..., ~fragile], gold[..., ~fragile], rtol=1e-5, atol=1e-5)
    assert np.isfinite(ours).all()
    assert np.abs(ours[..., fragile] - gold[..., fragile]).max(initial=0) < 0.5


@pytest.mark.parametrize("name", list(GOLDENS))
def test_golden_quantised_image_matches_the_official_png(name, golden_runs):
    """Quantise as the official script does (SepConv/EDSC truncate, torchvision rounds half up)."""
    arch = GOLDENS[name][0]
    _, out, _ = golden_runs(name)
    rgb = out.flip(1) if GOLDENS[name][3] == "bgr" else out
    scaled = rgb[0].numpy().transpose(1, 2, 0)
    if arch in ("sepconv", "edsc_s", "edsc_m"):
        scaled = np.clip(scaled, 0, 1) * 255
        ours = scaled.astype(np.uint8)
    else:
        scaled = scaled * 255 + 0.5
        ours = np.clip(scaled, 0, 255).astype(np.uint8)
    official = np.asarray(Image.open(GOLDEN / "outputs" / f"{name}_official.png").convert("RGB"))
    _, fragile = golden_output(name)
    near_boundary = np.abs(scaled - np.round(scaled)) < 1e-3
    differ = (ours != official) & ~near_boundary & ~fragile[..., None]
    assert not differ.any(), f"{int(differ.sum())} quantised values differ"


def corners(x: torch.Tensor) -> np.ndarray:
    """(2, 1, C, 8, 8) top-left and bottom-right 8x8 corners, as the golden intermediates store them."""
    return np.stack([x[..., :8, :8].numpy(), x[..., -8:, -8:].numpy()])


def test_adacof_aux_names_match_the_official_heads(golden_runs):
    """offset_y is the official alpha (rows), offset_x the official beta (columns); V weights frame0."""
    _, _, aux = golden_runs("adacof_F5_D1")
    inter = GOLDEN / "intermediates" / "adacof_F5_D1"
    (w1, oy1, ox1), (w2, oy2, ox2) = aux["kernels"]
    for ours, official in ((w1, "Weight1"), (oy1, "Alpha1"), (ox1, "Beta1"), (w2, "Weight2"), (oy2, "Alpha2"),
                           (ox2, "Beta2")):
        np.testing.assert_allclose(corners(ours), np.load(inter / f"module{official}_corners.npy"), rtol=1e-5,
                                   atol=1e-5)
    np.testing.assert_allclose(aux["occlusion"].numpy(), np.load(inter / "occlusion.npy"), rtol=1e-5, atol=1e-5)


def test_aux_reproduces_the_official_training_regulariser(golden_runs):
    """The aux kernels are what the AdaCoF g_Spatial / g_Occlusion losses need (spec section 2.4)."""
    _, _, aux = golden_runs("adacof_F5_D1")

    def charb(x):
        return torch.sqrt(x * x + 1e-6).mean()

    def tv(m):
        return charb(m[..., :, :-1] - m[..., :, 1:]) + charb(m[..., :-1, :] - m[..., 1:, :])

    (w1, oy1, ox1), (w2, oy2, ox2) = aux["kernels"]
    g_spatial = sum(tv((w * o).mean(1, keepdim=True)) for w, o in ((w1, oy1), (w1, ox1), (w2, oy2), (w2, ox2)))
    inter = GOLDEN / "intermediates" / "adacof_F5_D1"
    np.testing.assert_allclose(g_spatial.item(), np.load(inter / "train_g_spatial.npy"), rtol=1e-5)
    np.testing.assert_allclose(tv(aux["occlusion"]).item(), np.load(inter / "train_g_occlusion.npy"), rtol=1e-5)


def test_edsc_aux_offsets_follow_the_official_swapped_names(golden_runs):
    """Official Offset1x (the op's 4th argument) moves rows: it is our offset_y1."""
    _, _, aux = golden_runs("edsc_s")
    inter = GOLDEN / "intermediates" / "edsc_s"
    v1, h1, oy1, ox1, m1 = aux["kernels"][0]
    for ours, official in ((v1, "Vertical1"), (h1, "Horizontal1"), (oy1, "Offset1x"), (ox1, "Offset1y"),
                           (m1, "Mask1")):
        np.testing.assert_allclose(corners(ours), np.load(inter / f"module{official}_corners.npy"), rtol=1e-5,
                                   atol=1e-5)
