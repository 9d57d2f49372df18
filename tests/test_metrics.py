"""Metrics against independent computations (known MSE, skimage's own calls, IE definition, LPIPS)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from torch.nn import functional as F

from tests.helpers import random_lpips_weights
from vfikit.errors import VfikitError, VfikitTypeError
from vfikit.metrics import LPIPS, compute_metrics, interpolation_error, psnr, quantize, ssim


def levels(h=20, w=24, seed=0) -> torch.Tensor:
    """A random (3, H, W) image of exact 8-bit levels k/255 (float32, as ToTensor gives)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (3, h, w), generator=g).float() / 255.0


def cdfi_quantize(x: torch.Tensor) -> np.ndarray:
    """CDFI's save_image/read-back round trip written out in numpy: (3, H, W) float32 k/255."""
    u8 = np.clip(np.floor(x.numpy().astype(np.float32) * 255 + 0.5), 0, 255).astype(np.uint8)
    return u8.astype(np.float32) / 255


def test_psnr_of_a_known_mse():
    target = torch.full((3, 8, 8), 100 / 255)
    pred = torch.full((3, 8, 8), 110 / 255)
    assert psnr(pred, target) == pytest.approx(20 * math.log10(255 / 10), abs=1e-12)
    pred[0] = 100 / 255  # two channels off by 10: MSE = 100 * 2/3
    assert psnr(pred, target) == pytest.approx(10 * math.log10(255**2 / (100 * 2 / 3)), abs=1e-12)


def test_psnr_quantises_round_half_up_and_clips():
    target = levels()
    assert psnr(target + 0.4 / 255, target) == math.inf  # rounds back to the same level
    off_by_one = psnr(target.clamp(max=254 / 255) + 0.6 / 255, target.clamp(max=254 / 255))
    assert off_by_one == pytest.approx(10 * math.log10(255**2), abs=1e-9)  # every value one level up
    white = torch.ones(3, 8, 8)
    assert psnr(white + 0.5, white) == math.inf  # clipped to 255 like the saved PNG
    assert psnr(target + 0.4 / 255, target, quantize=False) < 60


def test_psnr_matches_skimage_on_the_cdfi_call():
    target, pred = levels(seed=1), levels(seed=2) * 0.3 + levels(seed=1) * 0.7
    ref = peak_signal_noise_ratio(target.numpy(), cdfi_quantize(pred), data_range=1)
    assert psnr(pred, target) == pytest.approx(ref, abs=1e-4)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_ssim_matches_skimage(dtype):
    target, pred = levels(seed=3), levels(seed=4) * 0.2 + levels(seed=3) * 0.8
    np_dtype = np.float64 if dtype == "float64" else np.float32
    gt = target.numpy().transpose(1, 2, 0).astype(np_dtype)
    out = cdfi_quantize(pred).transpose(1, 2, 0).astype(np_dtype)
    ref = structural_similarity(gt, out, data_range=1, channel_axis=-1)
    assert ssim(pred, target, dtype=dtype) == pytest.approx(float(ref), abs=1e-12)


def test_ssim_identity_noise_and_small_images():
    target = levels()
    assert ssim(target, target) == pytest.approx(1.0, abs=1e-12)
    assert ssim(levels(seed=9), target) < 0.2  # unrelated noise
    with pytest.raises(VfikitError, match="at least 7x7"):
        ssim(torch.zeros(3, 6, 9), torch.zeros(3, 6, 9))
    with pytest.raises(VfikitError, match="dtype"):
        ssim(target, target, dtype="float16")


def test_interpolation_error_definition():
    target = torch.full((3, 5, 7), 50 / 255)
    pred = target.clone()
    pred[0] += 3 / 255
    pred[1] += 4 / 255  # every pixel's RGB difference is (3, 4, 0): L2 norm 5
    assert interpolation_error(pred, target) == pytest.approx(5.0, abs=1e-9)
    pred[:, :, 3:] = target[:, :, 3:]  # half-ish of the pixels exact: 3 of 7 columns with error 5
    assert interpolation_error(pred, target) == pytest.approx(math.sqrt(25 * 3 / 7), abs=1e-9)


def test_metric_input_errors():
    with pytest.raises(VfikitError, match="shapes differ"):
        psnr(torch.zeros(3, 8, 8), torch.zeros(3, 8, 9))
    with pytest.raises(VfikitError, match=r"\(3, H, W\)"):
        psnr(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))
    with pytest.raises(VfikitTypeError, match="ndarray"):
        psnr(np.zeros((3, 8, 8)), torch.zeros(3, 8, 8))
    with pytest.raises(VfikitError, match="unknown metric 'mse'"):
        compute_metrics(torch.zeros(3, 8, 8), torch.zeros(3, 8, 8), ["mse"])
    with pytest.raises(VfikitError, match="needs LPIPS weights"):
        compute_metrics(torch.zeros(3, 8, 8), torch.zeros(3, 8, 8), ["lpips"])


def test_quantize_gives_back_8bit_levels():
    x = levels() + 0.3 / 255
    assert torch.equal(quantize(x), levels())


# ---------------------------------------------------------------- LPIPS

def lpips_by_hand(sd: dict, x: torch.Tensor, y: torch.Tensor) -> float:
    """A straightforward LPIPS v0.1 / SqueezeNet-1.1 written from the paper's description."""
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)

    def fire(i, h):
        s = F.relu(F.conv2d(h, sd[f"features.{i}.squeeze.weight"], sd[f"features.{i}.squeeze.bias"]))
        e1 = F.relu(F.conv2d(s, sd[f"features.{i}.expand1x1.weight"], sd[f"features.{i}.expand1x1.bias"]))
        e3 = F.relu(F.conv2d(s, sd[f"features.{i}.expand3x3.weight"], sd[f"features.{i}.expand3x3.bias"], padding=1))
        return torch.cat([e1, e3], 1)

    def feats(img):
        h = (img[None] - shift) / scale
        out = []
        h = F.relu(F.conv2d(h, sd["features.0.weight"], sd["features.0.bias"], stride=2))
        out.append(h)
        for block in ((3, 4), (6, 7), (9,), (10,), (11,), (12,)):
            if block[0] in (3, 6, 9):
                h = F.max_pool2d(h, 3, 2, ceil_mode=True)
            for i in block:
                h = fire(i, h)
            out.append(h)
        return out

    total = 0.0
    for k, (a, b) in enumerate(zip(feats(x), feats(y))):
        na = a / (a.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        nb = b / (b.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        total += float((F.conv2d((na - nb) ** 2, sd[f"lin{k}.model.1.weight"])).mean())
    return total


@pytest.fixture(scope="module")
def lpips_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("lpips")
    backbone, lins = random_lpips_weights()
    torch.save(backbone, d / "squeezenet1_1.pth")
    torch.save(lins, d / "squeeze.pth")
    return d / "squeezenet1_1.pth", d / "squeeze.pth", {**backbone, **lins}


def test_lpips_matches_a_direct_computation(lpips_files):
    bb, lin, sd = lpips_files
    model = LPIPS.from_files([bb, lin])
    x, y = levels(40, 48, seed=5), levels(40, 48, seed=6)
    with torch.no_grad():
        ours = float(model(x, y)[0])
        ours_cdfi = float(model(x, y, rescale=False)[0])
        ref = lpips_by_hand(sd, x * 2 - 1, y * 2 - 1)
        ref_cdfi = lpips_by_hand(sd, x, y)
    assert ours == pytest.approx(ref, rel=1e-5)
    assert ours_cdfi == pytest.approx(ref_cdfi, rel=1e-5)
    assert ours != pytest.approx(ours_cdfi, rel=1e-3)  # the missing rescale changes the value
    assert float(model(x, x)[0]) == pytest.approx(0.0, abs=1e-7)
    assert float(model(y, x)[0]) == pytest.approx(ours, rel=1e-6)


def test_lpips_accepts_the_lpips_package_state_dict(lpips_files, tmp_path):
    bb, lin, sd = lpips_files
    slices = {1: (0,), 2: (3, 4), 3: (6, 7), 4: (9,), 5: (10,), 6: (11,), 7: (12,)}
    index_to_slice = {i: s for s, idxs in slices.items() for i in idxs}
    full = {}
    for k, v in sd.items():
        if k.startswith("features."):
            idx = int(k.split(".")[1])
            full[f"net.slice{index_to_slice[idx]}.{k.split('.', 1)[1]}"] = v
        else:
            full[k] = v
    full["scaling_layer.shift"] = torch.zeros(1, 3, 1, 1)
    torch.save(full, tmp_path / "full.pth")
    a, b = LPIPS.from_files(tmp_path / "full.pth"), LPIPS.from_files([bb, lin])
    x, y = levels(24, 24, seed=1), levels(24, 24, seed=2)
    assert torch.equal(a(x, y), b(x, y))
    row = compute_metrics(y, x, ["lpips", "lpips_cdfi"], lpips=a)
    assert row["lpips"] == pytest.approx(float(b(x, y)[0]), rel=1e-6)


def test_lpips_weight_errors(lpips_files, tmp_path):
    bb, _, sd = lpips_files
    with pytest.raises(VfikitError, match="not found"):
        LPIPS.from_files(tmp_path / "missing.pth")
    with pytest.raises(VfikitError, match="lack 7 tensors"):
        LPIPS.from_files(bb)  # backbone without the linear layers
    bad = dict(sd)
    bad["lin2.model.1.weight"] = torch.zeros(1, 3, 1, 1)
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(VfikitError, match=r"lins.2.weight"):
        LPIPS.from_files(tmp_path / "bad.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(VfikitError, match="cannot read .* as LPIPS weights"):
        LPIPS.from_files(tmp_path / "junk.pth")
