"""CDFI (Ding, Liang, Zhu, Zharkov, CVPR 2021): compressed AdaCoF + feature-pyramid warping + GridNet.

The pruned AdaCoF kernel estimator (widths in ``specs/cdfi.json``) also outputs a blend map and five
1x1-conv features of its encoder (one per level). Each feature map is resized to the frame size and
warped with both AdaCoF kernel sets; the two image warps and the ten feature warps (126 channels)
feed a GridNet whose output is blended with the occlusion-weighted AdaCoF result:
``frame_t = B * GridNet(...) + (1 - B) * (V * warp0 + (1 - V) * warp1)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from vfikit.models.adacof import CDFI_CITATION, CDFI_RAW, NO_LICENSE, AdaCoF, _cdfi_metrics
from vfikit.models.blocks import KeyMap, conv3x3, like
from vfikit.models.catalog import WeightSpec, register_model
from vfikit.ops import adacof as adacof_op


class LateralBlock(nn.Module):
    """PReLU, conv, PReLU, conv plus a residual (through a 3x3 conv when the widths differ)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.f = nn.Sequential(nn.PReLU(), conv3x3(cin, cout), nn.PReLU(), conv3x3(cout, cout))
        self.conv = conv3x3(cin, cout) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.f(x) + (x if self.conv is None else self.conv(x))


class DownSamplingBlock(nn.Module):
    """PReLU, stride-2 conv, PReLU, conv: (B, cin, H, W) -> (B, cout, H/2, W/2)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.f = nn.Sequential(nn.PReLU(), nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.PReLU(),
                               conv3x3(cout, cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.f(x)


class UpSamplingBlock(nn.Module):
    """Bilinear x2 (align_corners=False), PReLU, conv, PReLU, conv."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.f = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), nn.PReLU(),
                               conv3x3(cin, cout), nn.PReLU(), conv3x3(cout, cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.f(x)


class GridNet(nn.Module):
    """GridNet with three rows (full, 1/2, 1/4 resolution) and six columns; (B, cin, H, W) -> (B, cout, H, W).

    H and W must be multiples of 4. PReLUs have one shared slope each (init 0.25).
    """

    def __init__(self, in_channels: int, out_channels: int = 3, widths: Sequence[int] = (32, 64, 96)) -> None:
        super().__init__()
        a, b, c = widths
        self.lateral_init = LateralBlock(in_channels, a)
        for r, w in enumerate(widths):
            for col in range(5):
                self.add_module(f"lateral_{r}_{col}", LateralBlock(w, w))
        for r, (cin, cout) in enumerate(((a, b), (b, c))):
            for col in range(3):
                self.add_module(f"down_{r}_{col}", DownSamplingBlock(cin, cout))
        for r, (cin, cout) in enumerate(((b, a), (c, b))):
            for col in range(3):
                self.add_module(f"up_{r}_{col}", UpSamplingBlock(cin, cout))
        self.lateral_final = LateralBlock(a, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self._modules
        s00 = self.lateral_init(x)
        s10 = m["down_0_0"](s00)
        s20 = m["down_1_0"](s10)
        s01 = m["lateral_0_0"](s00)
        s11 = m["down_0_1"](s01) + m["lateral_1_0"](s10)
        s21 = m["down_1_1"](s11) + m["lateral_2_0"](s20)
        s02 = m["lateral_0_1"](s01)
        s12 = m["down_0_2"](s02) + m["lateral_1_1"](s11)
        s22 = m["down_1_2"](s12) + m["lateral_2_1"](s21)
        s23 = m["lateral_2_2"](s22)
        s13 = m["up_1_0"](s23) + m["lateral_1_2"](s12)
        s03 = m["up_0_0"](s13) + m["lateral_0_2"](s02)
        s24 = m["lateral_2_3"](s23)
        s14 = m["up_1_1"](s24) + m["lateral_1_3"](s13)
        s04 = m["up_0_1"](s14) + m["lateral_0_3"](s03)
        s25 = m["lateral_2_4"](s24)
        s15 = m["up_1_2"](s25) + m["lateral_1_4"](s14)
        s05 = m["up_0_2"](s15) + m["lateral_0_4"](s04)
        return self.lateral_final(s05)


class CDFI(AdaCoF):
    """CDFI network. Same arguments and pipeline as :class:`AdaCoF` (defaults F=11, D=2, widths "cdfi").

    Conventions (feature pyramid): ``"official"``: the 1x1 convs use padding=1 (a one-pixel ring
    equal to the conv bias) and each feature map is bilinearly resized (align_corners=False) to the
    replicate-bordered frame size (Hp + 2P, Wp + 2P) before the official op, exactly as the authors'
    code. ``"clean"``: 1x1 convs without padding, features resized to the frame size (Hp, Wp), clean op.
    aux: AdaCoF's plus ``"blend"`` (B, 1, Hp, Wp), the weight of the GridNet output.
    """

    family = "cdfi"
    _official_keys = KeyMap([
        (r"^pyramid\.(\d)\.", lambda m: f"get_kernel.module1by1_{int(m[1]) + 1}."),
        (r"^synthesis\.", "context_synthesis."),
        *[(p.pattern, r) for p, r in AdaCoF._official_keys.rules],
    ])

    def __init__(self, *, kernel_size: int = 11, dilation: int = 2, channels=None, convention: str = "clean",
                 channel_order: str = "rgb") -> None:
        super().__init__(kernel_size=kernel_size, dilation=dilation, channels="cdfi" if channels is None else channels,
                         convention=convention, channel_order=channel_order)

    def _build_before_unet(self, widths: Mapping[str, list[int]]) -> None:
        pad = 1 if self.convention == "official" else 0
        cins = [widths[f"conv{k}"][-1] for k in range(1, 6)]
        self.pyramid = nn.ModuleList(
            nn.Conv2d(cin, w, kernel_size=1, padding=pad) for cin, w in zip(cins, widths["pyramid"])
        )

    def _build_after_heads(self, widths: Mapping[str, list[int]]) -> None:
        self.synthesis = GridNet(6 + 2 * sum(widths["pyramid"]), 3)

    def _warps(self, x0, x1, encoder, k0, k1):
        """Warp each frame together with the five feature maps in ONE op call per frame.

        The op treats channels independently, so warping ``cat[frame, f1..f5]`` equals six separate
        calls while computing every tap's indices and weights once (the official code made 12 calls).
        Returns the two warped frames and the warped features in the synthesis order L1, R1, ..., L5, R5.
        """
        hp, wp = x0.shape[-2:]
        size = (hp + 2 * self.reach, wp + 2 * self.reach) if self.convention == "official" else (hp, wp)
        feats = [F.interpolate(conv(enc), size=size, mode="bilinear", align_corners=False)
                 for conv, enc in zip(self.pyramid, encoder)]
        widths = [f.shape[1] for f in feats]

        def warp(x: torch.Tensor, kernels: tuple) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
            if self.convention == "official":
                p = self.reach
                x = F.pad(x, (p, p, p, p), mode="replicate")
            source = torch.cat([x.to(feats[0].dtype), *feats], 1)
            y = adacof_op(source, *like(source, kernels), self.dilation, convention=self.convention)
            return y[:, :3], torch.split(y[:, 3:], widths, 1)

        warp0, left = warp(x0, k0)
        warp1, right = warp(x1, k1)
        return warp0, warp1, [t for pair in zip(left, right) for t in pair]

    def _refine(self, out, warp0, warp1, extra, trunk, aux):
        synth = self.synthesis(torch.cat([warp0, warp1, *extra], 1))
        blend = self.heads["blend"](trunk)
        aux["blend"] = blend
        return blend * synth + (1 - blend) * out


@register_model(
    "cdfi",
    family="cdfi",
    params=4_976_718,
    description="CDFI (CVPR 2021): pruned AdaCoF estimator (F=11, D=2) + feature-pyramid warping + GridNet + blend",
    weights=(
        WeightSpec(tag="official", format="adacof", url=CDFI_RAW + "CDFI_adacof.pth", code_license=NO_LICENSE,
                   weights_license=NO_LICENSE, citation=CDFI_CITATION,
                   reported_metrics=_cdfi_metrics((35.17, 0.964, 0.010), (37.14, 0.966, 0.007), (35.21, 0.950, 0.015)),
                   notes="CDFI checkpoints/CDFI_adacof.pth ('Our Final Model' of the README)"),
    ),
)
def cdfi(**kwargs) -> CDFI:
    """CDFI (4,976,718 parameters)."""
    return CDFI(**kwargs)
