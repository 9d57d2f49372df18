"""AdaCoF (Lee et al., CVPR 2020) and compressed AdaCoF (CDFI, CVPR 2021), built from a channel spec.

Kernel estimator: the additive-skip U-Net and seven heads (tap weights with softmax, row offsets,
column offsets for each frame; an occlusion map with sigmoid). Synthesis:
``frame_t = V * adacof(frame0, W1, oy1, ox1) + (1 - V) * adacof(frame1, W2, oy2, ox2)``.
The widths come from a channel spec (``vfikit.models.channel_spec``): the dense AdaCoF widths are
computed from the kernel size, the compressed ones live in ``specs/compressed_adacof.json``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from vfikit.errors import VfikitError
from vfikit.models.blocks import (
    KernelUNet,
    KeyMap,
    camel,
    check_frames,
    flip_channels,
    head,
    like,
    midpoint_only,
    pad_to_multiple,
    reflect_pad_fits,
)
from vfikit.models.catalog import WeightSpec, register_model
from vfikit.models.channel_spec import ADACOF_HEADS, dense_adacof_widths, load_channel_spec
from vfikit.models.kernel_model import KernelVFIModel
from vfikit.ops import adacof as adacof_op
from vfikit.runtime import check_int

# Mean subtracted from the kernel-estimator input (RGB), as in the official AdaCoF / CDFI code.
RGB_MEAN = (0.4631, 0.4352, 0.3990)

_OFFICIAL_HEAD = {"weight1": "Weight1", "offset_y1": "Alpha1", "offset_x1": "Beta1", "weight2": "Weight2",
                  "offset_y2": "Alpha2", "offset_x2": "Beta2", "occlusion": "Occlusion", "blend": "Blend"}


class AdaCoF(KernelVFIModel):
    """AdaCoF network of any widths. ``forward(frame0, frame1, t=None, return_aux=False)``.

    Args:
        kernel_size: F, taps per axis (5 for AdaCoF, 11 for AdaCoF+).
        dilation: D, tap spacing (1 for AdaCoF, 2 for AdaCoF+).
        channels: the widths: None (dense AdaCoF for this F), a packaged spec name
            (``"compressed_adacof"``), a JSON path, or a mapping (see ``vfikit.models.channel_spec``).
        convention: ``"clean"`` (default): replicate-pad right/bottom to a multiple of 32 (any frame
            size), clean op (centred taps, clamped bilinear) on the padded frames. ``"official"``: the
            authors' pipeline: reflect-pad bottom then right to a multiple of 32 (frames must be larger
            than the padding), a ((F-1)*D // 2)-px replicate border and the official op (truncated
            offsets, per-corner clamping).
        channel_order: ``"rgb"`` (the official weights) or ``"bgr"``.
    The estimator input is both frames minus the RGB mean (0.4631, 0.4352, 0.3990) in both conventions.
    aux: ``{"kernels": [(weight1, offset_y1, offset_x1), (weight2, offset_y2, offset_x2)], "occlusion": V}``,
    kernels (B, F*F, Hp, Wp) and V (B, 1, Hp, Wp) at the padded working size; V weights frame0.
    """

    arbitrary_t = False
    official_format = "adacof"
    official_channel_order = "rgb"
    family = "adacof"
    _official_keys = KeyMap([
        (r"^unet\.(conv|deconv|upsample)(\d)", lambda m: f"get_kernel.module{camel(m[1])}{m[2]}"),
        (r"^heads\.(\w+?)\.", lambda m: f"get_kernel.module{_OFFICIAL_HEAD[m[1]]}."),
    ])

    def __init__(self, *, kernel_size: int = 5, dilation: int = 1,
                 channels: str | os.PathLike | Mapping[str, Any] | None = None,
                 convention: str = "clean", channel_order: str = "rgb") -> None:
        super().__init__(convention=convention, channel_order=channel_order)
        for name, v in (("kernel_size", kernel_size), ("dilation", dilation)):
            check_int(v, name, low=1)
        if convention == "clean" and kernel_size % 2 == 0:
            raise VfikitError(f"the clean convention centres the taps and needs an odd kernel_size, got {kernel_size}")
        self.kernel_size, self.dilation = kernel_size, dilation
        widths = dense_adacof_widths(kernel_size) if channels is None else load_channel_spec(channels, self.family)
        self.model_args.update(kernel_size=kernel_size, dilation=dilation, channels=widths)
        self._build_before_unet(widths)
        self.unet = KernelUNet({k: widths[k] for k in widths}, order="interleaved")
        c, taps = self.unet.out_channels, kernel_size * kernel_size
        heads: dict[str, nn.Module] = {}
        for name in ADACOF_HEADS:
            if name == "occlusion":
                heads[name] = head(c, widths[name], 1, "sigmoid")
            else:
                heads[name] = head(c, widths[name], taps, "softmax" if name.startswith("weight") else None)
        if "blend" in widths:
            heads["blend"] = head(c, widths["blend"], 1, "sigmoid")
        self.heads = nn.ModuleDict(heads)
        self._build_after_heads(widths)
        self.register_buffer("rgb_mean", torch.tensor(RGB_MEAN).view(1, 3, 1, 1), persistent=False)

    # Hooks for CDFI (module registration order follows the official checkpoints).
    def _build_before_unet(self, widths: Mapping[str, list[int]]) -> None:
        pass

    def _build_after_heads(self, widths: Mapping[str, list[int]]) -> None:
        pass

    @property
    def reach(self) -> int:
        """Replicate border the official op expects: floor((F-1)*D/2)."""
        return (self.kernel_size - 1) * self.dilation // 2

    def _pad(self, frame: torch.Tensor) -> torch.Tensor:
        x = flip_channels(frame, self.channel_order)
        if self.convention == "official":
            h, w = x.shape[-2:]
            if not reflect_pad_fits(h, w, 32):
                raise VfikitError(
                    f"the official AdaCoF/CDFI pipeline reflect-pads {h}x{w} frames to a multiple of 32, which "
                    "needs each padding to be smaller than its side (sides of 16 px or less never fit); use "
                    "vfikit.Interpolator (it pads small frames first) or the clean convention"
                )
            return pad_to_multiple(x, 32, "reflect")
        return pad_to_multiple(x, 32, "replicate")

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        mean = self.rgb_mean.to(x.dtype)
        return x - (mean.flip(1) if self.channel_order == "bgr" else mean)

    def _warp(self, x: torch.Tensor, kernels: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """AdaCoF of an image or feature map x (B, C, Hp, Wp) with (weight, offset_y, offset_x)."""
        if self.convention == "official":
            p = self.reach
            x = F.pad(x, (p, p, p, p), mode="replicate")
        return adacof_op(x, *like(x, kernels), self.dilation, convention=self.convention)

    def forward(self, frame0: torch.Tensor, frame1: torch.Tensor, t: float | torch.Tensor | None = None,
                return_aux: bool = False):
        check_frames(frame0, frame1)
        midpoint_only(t, type(self).__name__)
        h0, w0 = frame0.shape[-2:]
        x0, x1 = self._pad(frame0), self._pad(frame1)
        trunk, encoder = self.unet(torch.cat([self._normalise(x0), self._normalise(x1)], 1))
        hd = self.heads
        k0 = (hd["weight1"](trunk), hd["offset_y1"](trunk), hd["offset_x1"](trunk))
        k1 = (hd["weight2"](trunk), hd["offset_y2"](trunk), hd["offset_x2"](trunk))
        occlusion = hd["occlusion"](trunk)
        warp0, warp1, extra = self._warps(x0, x1, encoder, k0, k1)
        out = occlusion * warp0 + (1 - occlusion) * warp1
        aux = {"kernels": [k0, k1], "occlusion": occlusion}
        out = self._refine(out, warp0, warp1, extra, trunk, aux)
        out = flip_channels(out[..., :h0, :w0], self.channel_order)
        return (out, aux) if return_aux else out

    def _warps(self, x0: torch.Tensor, x1: torch.Tensor, encoder: list[torch.Tensor], k0: tuple, k1: tuple):
        """The two warped frames, plus whatever else the synthesis stage warps (CDFI's features)."""
        return self._warp(x0, k0), self._warp(x1, k1), None

    def _refine(self, out: torch.Tensor, warp0: torch.Tensor, warp1: torch.Tensor, extra, trunk: torch.Tensor,
                aux: dict) -> torch.Tensor:
        """CDFI's synthesis stage; AdaCoF returns the occlusion-weighted warp unchanged."""
        return out


_ADACOF_CITATION = (
    "@inproceedings{lee2020adacof, title={AdaCoF: Adaptive Collaboration of Flows for Video Frame Interpolation}, "
    "author={Hyeongmin Lee and Taeoh Kim and Tae-young Chung and Daehyun Pak and Yuseok Ban and Sangyoun Lee}, "
    "booktitle={Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)}, "
    "year={2020}}"
)
CDFI_CITATION = (
    "@inproceedings{ding2021cdfi, title={CDFI: Compression-Driven Network Design for Frame Interpolation}, "
    "author={Ding, Tianyu and Liang, Luming and Zhu, Zhihui and Zharkov, Ilya}, booktitle={Proceedings of the "
    "IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)}, year={2021}}"
)
NO_LICENSE = "not stated (no licence file found in the repository)"
CDFI_RAW = "https://github.com/tding1/CDFI/raw/HEAD/checkpoints/"
CDFI_PROTOCOL = ("CDFI README table: Vimeo-90K test / Middlebury 'other' (12 with GT) / UCF101-DVF (379); PSNR, SSIM "
                 "(skimage, outputs quantised to uint8), LPIPS (SqueezeNet); see adacof_cdfi_spec.md section 8")


def _cdfi_metrics(vimeo: tuple, middlebury: tuple, ucf: tuple) -> dict[str, Any]:
    keys = ("psnr", "ssim", "lpips")
    return {"protocol": CDFI_PROTOCOL, "vimeo90k": dict(zip(keys, vimeo)),
            "middlebury_other": dict(zip(keys, middlebury)), "ucf101_dvf": dict(zip(keys, ucf))}


_F11_NOTE = ("AdaCoF-pytorch's kernelsize_11 config has no dilation line: which dilation that file was trained with is "
             "AMBIGUOUS; CDFI treats AdaCoF+ as F=11, D=2")


@register_model(
    "adacof_k5_d1",
    family="adacof",
    params=21_843_427,
    description="AdaCoF (CVPR 2020), F=5 taps, dilation 1",
    weights=(
        WeightSpec(tag="official", format="adacof",
                   url="https://github.com/HyeongminLEE/AdaCoF-pytorch/raw/HEAD/checkpoint/kernelsize_5/ckpt.pth",
                   code_license=NO_LICENSE, weights_license=NO_LICENSE, citation=_ADACOF_CITATION,
                   reported_metrics=_cdfi_metrics((34.35, 0.956, 0.019), (35.72, 0.959, 0.019), (35.16, 0.950, 0.019)),
                   notes="AdaCoF-pytorch checkpoint/kernelsize_5/ckpt.pth; the same file (same git blob) as CDFI "
                         "checkpoints/adacof_F_5_D_1.pth. Metrics as reported by CDFI."),
        WeightSpec(tag="official_pruned", format="adacof",
                   url=CDFI_RAW + "adacof_pruned_lr_1e-2_lam_1e-4_Np_10.pth",
                   code_license=NO_LICENSE, weights_license=NO_LICENSE, citation=CDFI_CITATION,
                   notes="CDFI extended version: AdaCoF F5/D1 fine-tuned with OBProxSG (sparse weights, dense "
                         "shapes); file name from the CDFI extended_version README, URL unverified."),
    ),
)
def adacof_k5_d1(**kwargs) -> AdaCoF:
    """AdaCoF, F=5, D=1 (21,843,427 parameters)."""
    return AdaCoF(**{"kernel_size": 5, "dilation": 1, **kwargs})


@register_model(
    "adacof_k11_d2",
    family="adacof",
    params=22_933_219,
    description="AdaCoF+ (AdaCoF with F=11 taps, dilation 2)",
    weights=(
        WeightSpec(tag="official", format="adacof", url=CDFI_RAW + "adacof_F_11_D_2.pth",
                   code_license=NO_LICENSE, weights_license=NO_LICENSE, citation=_ADACOF_CITATION,
                   reported_metrics=_cdfi_metrics((34.56, 0.959, 0.018), (36.09, 0.962, 0.017), (35.16, 0.950, 0.019)),
                   notes="CDFI checkpoints/adacof_F_11_D_2.pth (file name from the CDFI test scripts; URL unverified); "
                         "AdaCoF-pytorch also ships checkpoint/kernelsize_11/ckpt.pth. " + _F11_NOTE),
    ),
)
def adacof_k11_d2(**kwargs) -> AdaCoF:
    """AdaCoF+, F=11, D=2 (22,933,219 parameters)."""
    return AdaCoF(**{"kernel_size": 11, "dilation": 2, **kwargs})


@register_model(
    "compressed_adacof_k5_d1",
    family="adacof",
    params=2_452_094,
    description="Compressed AdaCoF (CDFI, CVPR 2021), F=5, D=1; widths from specs/compressed_adacof.json",
    weights=(
        WeightSpec(tag="official", format="adacof", url=CDFI_RAW + "compressed_adacof_F_5_D_1.pth",
                   code_license=NO_LICENSE, weights_license=NO_LICENSE, citation=CDFI_CITATION,
                   reported_metrics=_cdfi_metrics((34.10, 0.954, 0.020), (35.43, 0.957, 0.018), (35.10, 0.950, 0.019)),
                   notes="CDFI checkpoints/compressed_adacof_F_5_D_1.pth"),
    ),
)
def compressed_adacof_k5_d1(**kwargs) -> AdaCoF:
    """Compressed AdaCoF, F=5, D=1 (2,452,094 parameters)."""
    return AdaCoF(**{"kernel_size": 5, "dilation": 1, "channels": "compressed_adacof", **kwargs})


@register_model(
    "compressed_adacof_k11_d2",
    family="adacof",
    params=2_557_214,
    description="Compressed AdaCoF+ (CDFI, CVPR 2021), F=11, D=2; widths from specs/compressed_adacof.json",
    weights=(
        WeightSpec(tag="official", format="adacof", url=CDFI_RAW + "compressed_adacof_F_11_D_2.pth",
                   code_license=NO_LICENSE, weights_license=NO_LICENSE, citation=CDFI_CITATION,
                   reported_metrics=_cdfi_metrics((34.44, 0.958, 0.019), (35.73, 0.960, 0.018), (35.13, 0.950, 0.019)),
                   notes="CDFI checkpoints/compressed_adacof_F_11_D_2.pth"),
    ),
)
def compressed_adacof_k11_d2(**kwargs) -> AdaCoF:
    """Compressed AdaCoF+, F=11, D=2 (2,557,214 parameters)."""
    return AdaCoF(**{"kernel_size": 11, "dilation": 2, "channels": "compressed_adacof", **kwargs})
