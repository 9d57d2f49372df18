"""Image quality metrics with the evaluation protocol of CDFI's ``mytest.py`` (see docs/evaluation.md).

Every metric takes a prediction and a target as (3, H, W) float RGB tensors in [0, 1] and, by
default, first quantises both to 8 bits exactly as CDFI's file round trip does (x*255 + 0.5,
clipped to [0, 255], truncated: round half up). The target of an 8-bit benchmark is unchanged by
this; the prediction becomes what a saved PNG would hold.

* :func:`psnr`: 10*log10(1 / MSE) over all 3*H*W values of k/255 images; computed exactly from
  the integer differences in float64 (skimage's ``peak_signal_noise_ratio`` with data_range 1
  gives the same number to ~1e-5 dB). Identical images give ``inf``.
* :func:`ssim`: scikit-image ``structural_similarity(target, pred, data_range=1, channel_axis=-1)``
  on HWC arrays: per-channel SSIM with a 7x7 uniform window, K1 0.01, K2 0.03, sample covariance,
  3-pixel border cropped, mean over channels. Computed in float64 (the arrays hold the float32
  values k/255 that ToTensor produces, widened): what the skimage versions of CDFI's time did;
  skimage >= 0.19 computes float32 inputs in float32 (``dtype="float32"`` reproduces that; the
  two differ by ~1e-6).
* :func:`interpolation_error`: Middlebury IE (Baker et al., IJCV 2011): the RMS over pixels of the
  L2 norm of the RGB difference, in 0..255 intensity. (This is sqrt(3) times the per-value RMS;
  some repositories call the mean absolute error "IE" instead.)
* :class:`LPIPS`: LPIPS v0.1 with the SqueezeNet-1.1 backbone, written in plain torch; weights come
  from user files (no download). ``lpips_cdfi`` feeds [0, 1] images as CDFI does (LPIPS expects
  [-1, 1]; CDFI forgot the rescale), ``lpips`` rescales correctly.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from vfikit.errors import MissingDependencyError, VfikitError, VfikitTypeError
from vfikit.image_files import to_uint8
from vfikit.runtime import torch_load

METRICS = ("psnr", "ssim", "ie", "lpips", "lpips_cdfi")
HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "ie": False, "lpips": False, "lpips_cdfi": False}

PROTOCOL = {
    "name": "cdfi-mytest",
    "quantization": "prediction and target quantised to uint8 as x*255+0.5 clipped to [0,255] and truncated "
    "(round half up; the PNG file round trip of CDFI's mytest.py)",
    "psnr": "10*log10(1/MSE) over all 3*H*W values of the k/255 images, float64 (exact integer MSE)",
    "ssim": "skimage.metrics.structural_similarity(target, pred, data_range=1, channel_axis=-1) on HWC arrays, "
    "7x7 uniform window, mean over channels, computed in float64",
    "ie": "Middlebury interpolation error: sqrt(mean over pixels of the squared L2 norm of the RGB difference), "
    "0..255 scale",
    "lpips": "LPIPS v0.1 SqueezeNet-1.1, inputs rescaled to [-1,1]",
    "lpips_cdfi": "LPIPS v0.1 SqueezeNet-1.1, [0,1] inputs fed unscaled as CDFI's mytest.py does",
    "aggregate": "arithmetic mean of the per-sample values",
    "deterministic": True,
}


def _check_pair(pred: torch.Tensor, target: torch.Tensor) -> None:
    for name, x in (("pred", pred), ("target", target)):
        if not isinstance(x, torch.Tensor):
            raise VfikitTypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 3 or x.shape[0] != 3:
            raise VfikitError(f"{name} must have shape (3, H, W), got {tuple(x.shape)}")
    if pred.shape != target.shape:
        raise VfikitError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")


def _as_uint8_pair(pred: torch.Tensor, target: torch.Tensor, quantize: bool) -> tuple[np.ndarray, np.ndarray]:
    """HWC uint8 arrays (quantize=True) or HWC float64 arrays in 0..255 (quantize=False)."""
    _check_pair(pred, target)
    if quantize:
        return to_uint8(pred), to_uint8(target)
    scale = lambda x: x.detach().double().cpu().permute(1, 2, 0).numpy() * 255.0  # noqa: E731
    return scale(pred), scale(target)


def quantize(image: torch.Tensor) -> torch.Tensor:
    """(3, H, W) float -> the float32 k/255 image a saved 8-bit PNG would give back (round half up)."""
    _check_pair(image, image)
    return torch.from_numpy(to_uint8(image).astype(np.float32) / 255.0).permute(2, 0, 1).contiguous()


def psnr(pred: torch.Tensor, target: torch.Tensor, *, quantize: bool = True) -> float:
    """PSNR in dB with data range 1 (after uint8 quantisation unless ``quantize=False``)."""
    a, b = _as_uint8_pair(pred, target, quantize)
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def ssim(pred: torch.Tensor, target: torch.Tensor, *, quantize: bool = True, dtype: str = "float64") -> float:
    """Mean SSIM over the three channels as skimage computes it (see module docstring); ``dtype`` float64/float32."""
    if dtype not in ("float64", "float32"):
        raise VfikitError(f"ssim dtype must be 'float64' or 'float32', got {dtype!r}")
    from skimage.metrics import structural_similarity

    a, b = _as_uint8_pair(pred, target, quantize)
    if min(a.shape[:2]) < 7:
        raise VfikitError(f"ssim needs images of at least 7x7 pixels, got {a.shape[1]}x{a.shape[0]}")
    # float32 k/255 values as ToTensor produces them, then (optionally) widened.
    a32 = (a.astype(np.float32) / np.float32(255.0)) if quantize else (a / 255.0).astype(np.float32)
    b32 = (b.astype(np.float32) / np.float32(255.0)) if quantize else (b / 255.0).astype(np.float32)
    if dtype == "float64":
        a32, b32 = a32.astype(np.float64), b32.astype(np.float64)
    return float(structural_similarity(b32, a32, data_range=1.0, channel_axis=-1))


def interpolation_error(pred: torch.Tensor, target: torch.Tensor, *, quantize: bool = True) -> float:
    """Middlebury IE on the 0..255 scale: sqrt(mean_pixels(sum_channels(diff^2)))."""
    a, b = _as_uint8_pair(pred, target, quantize)
    d = a.astype(np.float64) - b.astype(np.float64)
    return float(math.sqrt(np.mean(np.sum(d * d, axis=2))))


# ---------------------------------------------------------------------------------------------
# LPIPS (Zhang et al. 2018), v0.1, SqueezeNet-1.1 backbone: own implementation, user weights.

_FIRE = {  # features index -> (in, squeeze, expand) of torchvision's squeezenet1_1 Fire modules
    3: (64, 16, 64), 4: (128, 16, 64), 6: (128, 32, 128), 7: (256, 32, 128),
    9: (256, 48, 192), 10: (384, 48, 192), 11: (384, 64, 256), 12: (512, 64, 256),
}
_TAPS = (64, 128, 256, 384, 384, 512, 512)  # channels of the seven feature taps
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)


class _Fire(nn.Module):
    def __init__(self, cin: int, squeeze: int, expand: int):
        super().__init__()
        self.squeeze = nn.Conv2d(cin, squeeze, 1)
        self.expand1x1 = nn.Conv2d(squeeze, expand, 1)
        self.expand3x3 = nn.Conv2d(squeeze, expand, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.squeeze(x))
        return torch.cat([F.relu(self.expand1x1(x)), F.relu(self.expand3x3(x))], 1)


class LPIPS(nn.Module):
    """LPIPS distance, v0.1 with SqueezeNet-1.1 features and learned linear layers.

    Build it with :meth:`from_files` from the torchvision ``squeezenet1_1`` state dict
    (``features.*`` keys) and the LPIPS linear layers (``lin0..lin6``, spelled
    ``lin{k}.model.1.weight`` as in the lpips package or ``lin{k}.weight``), in one file or two.
    ``forward(x, y)`` takes (B, 3, H, W) (or (3, H, W)) tensors and returns (B,) distances.
    """

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.ModuleDict({"0": nn.Conv2d(3, 64, 3, stride=2)})
        for idx, (cin, sq, ex) in _FIRE.items():
            self.features[str(idx)] = _Fire(cin, sq, ex)
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in _TAPS)
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The seven feature maps LPIPS compares (after relu1, fire3, fire5, fire7..fire10 taps)."""
        f = self.features
        pool = lambda v: F.max_pool2d(v, 3, 2, ceil_mode=True)  # noqa: E731
        x = (x - self.shift) / self.scale
        h1 = F.relu(f["0"](x))
        h2 = f["4"](f["3"](pool(h1)))
        h3 = f["7"](f["6"](pool(h2)))
        h4 = f["9"](pool(h3))
        h5 = f["10"](h4)
        h6 = f["11"](h5)
        h7 = f["12"](h6)
        return [h1, h2, h3, h4, h5, h6, h7]

    def forward(self, x: torch.Tensor, y: torch.Tensor, *, rescale: bool = True) -> torch.Tensor:
        """Distance per batch item; ``rescale=True`` maps [0, 1] inputs to [-1, 1] first."""
        if x.dim() == 3:
            x = x[None]
        if y.dim() == 3:
            y = y[None]
        if x.shape[-3] != 3 or y.shape[-3] != 3 or x.shape[-2:] != y.shape[-2:]:
            raise VfikitError(
                f"LPIPS expects two RGB images of the same size, got {tuple(x.shape)} and {tuple(y.shape)}"
            )
        x = x.to(self.shift)
        y = y.to(self.shift)
        if rescale:
            x, y = x * 2 - 1, y * 2 - 1
        total = 0.0
        for lin, fx, fy in zip(self.lins, self.taps(x), self.taps(y)):
            nx = fx / (fx.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            ny = fy / (fy.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            total = total + lin((nx - ny) ** 2).mean(dim=(1, 2, 3))
        return total

    @classmethod
    def from_files(cls, paths: str | Path | Sequence[str | Path]) -> LPIPS:
        """Load backbone + linear weights from one or more ``.pth``/``.pt``/``.safetensors`` files."""
        if isinstance(paths, (str, Path)):
            paths = [paths]
        if not paths:
            raise VfikitError("LPIPS needs a weights file (SqueezeNet-1.1 backbone + LPIPS v0.1 linear layers)")
        state: dict[str, torch.Tensor] = {}
        for p in paths:
            state.update(_read_state(Path(p)))
        model = cls()
        target = model.state_dict()
        mapped: dict[str, torch.Tensor] = {}
        for key, value in state.items():
            k = _canonical_lpips_key(key)
            if k is not None:
                mapped[k] = value
        missing = [k for k in target if k not in mapped and k not in ("shift", "scale")]
        if missing:
            raise VfikitError(
                f"LPIPS weights in {', '.join(map(str, paths))} lack {len(missing)} tensors, e.g. {missing[0]!r} "
                "(need torchvision squeezenet1_1 'features.*' and LPIPS v0.1 'lin0'..'lin6')"
            )
        for k, v in mapped.items():
            if tuple(v.shape) != tuple(target[k].shape):
                raise VfikitError(f"LPIPS weight {k!r} has shape {tuple(v.shape)}, expected {tuple(target[k].shape)}")
        model.load_state_dict({**{k: target[k] for k in ("shift", "scale")}, **mapped}, strict=True)
        return model


_LIN_KEY = re.compile(r"^lins?\.?(\d)\.(?:model\.1\.)?weight$")
_SLICE_KEY = re.compile(r"^slice\d+\.(\d+)\.(.+)$")


def _canonical_lpips_key(key: str) -> str | None:
    """Our key for a torchvision / lpips-package / own key (None for keys we do not use)."""
    k = key.removeprefix("module.").removeprefix("net.")
    if m := _LIN_KEY.match(k):
        return f"lins.{m.group(1)}.weight"
    if m := _SLICE_KEY.match(k):  # the lpips package's full state dict (net.sliceN.<features index>...)
        return f"features.{m.group(1)}.{m.group(2)}"
    if k.startswith("features."):
        return k
    return None


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise VfikitError(f"LPIPS weights file not found: {path}")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError as exc:  # pragma: no cover - safetensors is a core dependency
            raise MissingDependencyError("reading .safetensors needs the safetensors package") from exc
        return dict(load_file(str(path)))
    obj = torch_load(path, "LPIPS weights")
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise VfikitError(f"LPIPS weights {path} are not a state dict of tensors")
    return obj


def compute_metrics(
    pred: torch.Tensor,
    target: torch.Tensor,
    names: Sequence[str] = ("psnr", "ssim", "ie"),
    *,
    lpips: LPIPS | None = None,
) -> dict[str, float]:
    """The requested metrics of one (3, H, W) prediction against its target, by the protocol above.

    LPIPS is computed on the quantised prediction (CDFI reads the saved PNG back) and needs ``lpips``.
    """
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise VfikitError(f"unknown metric {unknown[0]!r}; choose from {', '.join(METRICS)}")
    out: dict[str, float] = {}
    for name in names:
        if name == "psnr":
            out[name] = psnr(pred, target)
        elif name == "ssim":
            out[name] = ssim(pred, target)
        elif name == "ie":
            out[name] = interpolation_error(pred, target)
        else:
            if lpips is None:
                raise VfikitError(f"metric {name!r} needs LPIPS weights (SqueezeNet-1.1 + LPIPS v0.1 linear layers)")
            with torch.inference_mode():
                q, g = quantize(pred), quantize(target)
                out[name] = float(lpips(q, g, rescale=(name == "lpips"))[0])
    return out
