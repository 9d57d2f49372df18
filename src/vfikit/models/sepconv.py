"""SepConv (Niklaus, Mai, Liu, ICCV 2017): two pairs of 1-D 51-tap kernels per output pixel.

Network as in sniklaus/sepconv-slomo: the additive-skip U-Net (``blocks.KernelUNet``) and four
heads (vertical/horizontal x frame 0/1). ``frame_t = sepconv(frame0, v1, h1) + sepconv(frame1, v2, h2)``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from vfikit.errors import VfikitError
from vfikit.models.blocks import (
    SEPCONV_UNET_WIDTHS,
    KernelUNet,
    KeyMap,
    camel,
    check_choice,
    check_frames,
    flip_channels,
    head,
    like,
    midpoint_only,
    pad_to_multiple,
)
from vfikit.models.catalog import WeightSpec, register_model
from vfikit.models.kernel_model import KernelVFIModel
from vfikit.ops import sepconv as sepconv_op

_CITATION = (
    "@inproceedings{Niklaus_ICCV_2017, author = {Simon Niklaus and Long Mai and Feng Liu}, "
    "title = {Video Frame Interpolation via Adaptive Separable Convolution}, "
    "booktitle = {IEEE International Conference on Computer Vision}, year = {2017}}"
)
_LICENSE = "sepconv-slomo: 'strictly for academic purposes only' (README); commercial use needs the authors' consent"


class SepConv(KernelVFIModel):
    """SepConv network. ``forward(frame0, frame1, t=None, return_aux=False)``, frames (B, 3, H, W) RGB.

    Args:
        kernel_size: taps per 1-D kernel (51 in the paper; odd).
        convention: ``"clean"`` (default): replicate-pad right/bottom to a multiple of 32, centred
            clean op on the frames. ``"official"``: the authors' pipeline: right/bottom replicate
            padding to a multiple of 128 (``official_padding="improved"``, their default) or 25 px on
            every side first (``"paper"``), then a (kernel_size // 2)-px replicate border before the op.
        channel_order: ``"rgb"`` or ``"bgr"`` (the official weights work in BGR; callers always pass
            and receive RGB, the model flips internally).
    aux (``return_aux=True``): ``{"kernels": [(vertical1, horizontal1), (vertical2, horizontal2)]}``,
    each (B, kernel_size, Hp, Wp) at the padded working size.
    """

    arbitrary_t = False
    official_format = "sepconv"
    official_channel_order = "bgr"
    _official_keys = KeyMap([
        (r"^unet\.(conv|deconv|upsample)(\d)", lambda m: f"net{camel(m[1])}{m[2]}"),
        (r"^heads\.(vertical|horizontal)(\d)", lambda m: f"net{camel(m[1])}{m[2]}"),
    ])

    def __init__(self, *, kernel_size: int = 51, convention: str = "clean", channel_order: str = "rgb",
                 official_padding: str = "improved") -> None:
        super().__init__(convention=convention, channel_order=channel_order)
        if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise VfikitError(f"kernel_size must be a positive odd integer, got {kernel_size!r}")
        self.kernel_size = kernel_size
        self.official_padding = check_choice("official_padding", official_padding, ("improved", "paper"))
        self.model_args.update(kernel_size=kernel_size, official_padding=official_padding)
        self.unet = KernelUNet(SEPCONV_UNET_WIDTHS, order="grouped")
        c, n = self.unet.out_channels, kernel_size
        self.heads = nn.ModuleDict({name: head(c, (64, 64, n), n)
                                    for name in ("vertical1", "vertical2", "horizontal1", "horizontal2")})

    def forward(self, frame0: torch.Tensor, frame1: torch.Tensor, t: float | torch.Tensor | None = None,
                return_aux: bool = False):
        check_frames(frame0, frame1)
        midpoint_only(t, "sepconv")
        h0, w0 = frame0.shape[-2:]
        x0, x1 = flip_channels(frame0, self.channel_order), flip_channels(frame1, self.channel_order)
        top = 0
        if self.convention == "official":
            if self.official_padding == "paper":
                top = 25
                x0 = F.pad(x0, (top,) * 4, mode="replicate")
                x1 = F.pad(x1, (top,) * 4, mode="replicate")
            x0, x1 = pad_to_multiple(x0, 128, "replicate"), pad_to_multiple(x1, 128, "replicate")
        else:
            x0, x1 = pad_to_multiple(x0, 32, "replicate"), pad_to_multiple(x1, 32, "replicate")
        trunk, _ = self.unet(torch.cat([x0, x1], 1))
        v1, v2 = self.heads["vertical1"](trunk), self.heads["vertical2"](trunk)
        h1, h2 = self.heads["horizontal1"](trunk), self.heads["horizontal2"](trunk)
        if self.convention == "official":
            p = self.kernel_size // 2
            s0, s1 = F.pad(x0, (p,) * 4, mode="replicate"), F.pad(x1, (p,) * 4, mode="replicate")
        else:
            s0, s1 = x0, x1
        out = (sepconv_op(s0, *like(s0, (v1, h1)), convention=self.convention)
               + sepconv_op(s1, *like(s1, (v2, h2)), convention=self.convention))
        out = flip_channels(out[..., top:top + h0, top:top + w0], self.channel_order)
        if return_aux:
            return out, {"kernels": [(v1, h1), (v2, h2)]}
        return out


_SEPCONV_METRICS = {
    "middlebury_other_12": {
        "protocol": "sepconv-slomo benchmark.py: 12 Middlebury 'other' sequences with ground truth, uint8 "
                    "outputs (truncated), skimage PSNR (data_range 255) / SSIM",
        "l1_paper": {"psnr": 35.73, "ssim": 0.959}, "l1_improved": {"psnr": 35.85, "ssim": 0.959},
        "lf_paper": {"psnr": 35.03, "ssim": 0.954}, "lf_improved": {"psnr": 35.16, "ssim": 0.954},
    }
}


@register_model(
    "sepconv",
    family="sepconv",
    params=21_675_452,
    description="SepConv (ICCV 2017): U-Net + four 51-tap 1-D kernel heads, adaptive separable convolution",
    weights=(
        WeightSpec(tag="official", format="sepconv", url="http://content.sniklaus.com/sepconv/network-l1.pytorch",
                   code_license=_LICENSE, weights_license=_LICENSE, citation=_CITATION,
                   reported_metrics=_SEPCONV_METRICS,
                   notes="network-l1.pytorch (L1 loss; for quantitative evaluation)"),
        WeightSpec(tag="official_lf", format="sepconv", url="http://content.sniklaus.com/sepconv/network-lf.pytorch",
                   code_license=_LICENSE, weights_license=_LICENSE, citation=_CITATION,
                   reported_metrics=_SEPCONV_METRICS,
                   notes="network-lf.pytorch (L1 then VGG feature loss; for visual quality)"),
    ),
)
def sepconv(**kwargs) -> SepConv:
    """SepConv (21,675,452 parameters)."""
    return SepConv(**kwargs)
