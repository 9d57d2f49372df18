"""Shared builders of the kernel-estimation networks (SepConv, DSepConv, EDSC, AdaCoF, CDFI).

Every family uses the same additive-skip U-Net (the SepConv "trunk"): five encoder blocks of
three 3x3 conv + ReLU separated by 2x2 average pooling, then decoder blocks each followed by a
bilinear x2 upsampling block, with skip *additions*. Its output is a feature map at half the input
resolution, read by per-pixel "heads" that end at full resolution. Only the channel widths, the
conv type (plain or EDSC's heterogeneous conv) and the registration order differ between the
families; they are parameters here, never copies.

Sequential indices (0, 2, 4 for the three convs of a block; 1 for the conv of an upsampling block;
0, 2, 4, 7 for the convs of a head) are those of the official networks, so state-dict keys map
one-to-one onto the official checkpoints (see ``vfikit.models.convert``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from vfikit.errors import VfikitError, VfikitTypeError
from vfikit.runtime import check_frame

ConvFactory = Callable[[int, int], nn.Module]

CONVENTIONS = ("clean", "official")
CHANNEL_ORDERS = ("rgb", "bgr")


def conv3x3(cin: int, cout: int) -> nn.Conv2d:
    """3x3 convolution, stride 1, padding 1, with bias (every conv of the U-Nets and heads)."""
    return nn.Conv2d(cin, cout, kernel_size=3, stride=1, padding=1)


class HetConv2d(nn.Module):
    """EDSC's ``Efficient_HetConv2d``: grouped 3x3 + full 1x1 - grouped 1x1, all with bias.

    ``y = grouped3x3(x) + full1x1(x) - grouped1x1(x)``; (B, cin, H, W) -> (B, cout, H, W).
    Both ``cin`` and ``cout`` must be divisible by ``groups``. Equivalent to one dense 3x3 conv
    (see ``dense_equivalent``), which is how a trained model can be fused for speed.
    """

    def __init__(self, cin: int, cout: int, groups: int = 4) -> None:
        super().__init__()
        if cin % groups or cout % groups:
            raise VfikitError(f"HetConv2d needs channels divisible by groups={groups}, got {cin} -> {cout}")
        # Registration order = official order (conv3x3, conv1x1_, conv1x1).
        self.grouped3x3 = nn.Conv2d(cin, cout, 3, padding=1, groups=groups)
        self.grouped1x1 = nn.Conv2d(cin, cout, 1, groups=groups)
        self.full1x1 = nn.Conv2d(cin, cout, 1)
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.grouped3x3(x) + self.full1x1(x) - self.grouped1x1(x)

    def dense_equivalent(self) -> nn.Conv2d:
        """A single 3x3 conv computing the same function (up to float rounding)."""
        g3, g1, f1 = self.grouped3x3, self.grouped1x1, self.full1x1
        cout, cin = f1.out_channels, f1.in_channels
        gi, go = cin // self.groups, cout // self.groups
        w = torch.zeros(cout, cin, 3, 3, dtype=f1.weight.dtype, device=f1.weight.device)
        w[:, :, 1, 1] = f1.weight[:, :, 0, 0]
        for g in range(self.groups):
            rows, cols = slice(g * go, (g + 1) * go), slice(g * gi, (g + 1) * gi)
            w[rows, cols] += g3.weight[rows]
            w[rows, cols, 1, 1] -= g1.weight[rows, :, 0, 0]
        conv = nn.Conv2d(cin, cout, 3, padding=1).to(w)
        with torch.no_grad():
            conv.weight.copy_(w)
            conv.bias.copy_(g3.bias + f1.bias - g1.bias)
        return conv


def basic_block(cin: int, widths: Sequence[int], conv: ConvFactory = conv3x3,
                first_conv: ConvFactory | None = None) -> nn.Sequential:
    """Three convs, each followed by ReLU (indices 0, 2, 4): cin -> widths[0] -> widths[1] -> widths[2]."""
    first = first_conv or conv
    a, b, c = widths
    return nn.Sequential(first(cin, a), nn.ReLU(), conv(a, b), nn.ReLU(), conv(b, c), nn.ReLU())


def upsample_block(cin: int, cout: int, conv: ConvFactory = conv3x3) -> nn.Sequential:
    """Bilinear x2 (align_corners=True), conv (index 1), ReLU."""
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True), conv(cin, cout), nn.ReLU())


class Softmax1(nn.Module):
    """Softmax over the channel (tap) axis."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x, dim=1)


def head(cin: int, widths: Sequence[int], cout: int, activation: str | None = None) -> nn.Sequential:
    """Per-pixel head: 3 conv+ReLU at half resolution, bilinear x2 (align_corners=True), final conv.

    Convs at indices 0, 2, 4, 7: cin -> widths[0] -> widths[1] -> widths[2] -> (up) -> cout, then an
    optional ``"softmax"`` (over channels) or ``"sigmoid"`` at index 8.
    """
    a, b, c = widths
    layers: list[nn.Module] = [
        conv3x3(cin, a), nn.ReLU(), conv3x3(a, b), nn.ReLU(), conv3x3(b, c), nn.ReLU(),
        nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True), conv3x3(c, cout),
    ]
    if activation == "softmax":
        layers.append(Softmax1())
    elif activation == "sigmoid":
        layers.append(nn.Sigmoid())
    elif activation is not None:
        raise ValueError(f"unknown head activation {activation!r}")
    return nn.Sequential(*layers)


# The SepConv U-Net widths (also DSepConv's and EDSC's).
SEPCONV_UNET_WIDTHS: dict[str, list[int]] = {
    "conv1": [32, 32, 32], "conv2": [64, 64, 64], "conv3": [128, 128, 128], "conv4": [256, 256, 256],
    "conv5": [512, 512, 512], "deconv5": [512, 512, 512], "upsample5": [512], "deconv4": [256, 256, 256],
    "upsample4": [256], "deconv3": [128, 128, 128], "upsample3": [128], "deconv2": [64, 64, 64], "upsample2": [64],
}

UNET_MODULES = ("conv1", "conv2", "conv3", "conv4", "conv5",
                "deconv5", "upsample5", "deconv4", "upsample4", "deconv3", "upsample3", "deconv2", "upsample2")


class KernelUNet(nn.Module):
    """The additive-skip U-Net shared by all families. Input (B, Cin, H, W) with H, W multiples of 32.

    ``forward`` returns ``(trunk, encoder)``: trunk (B, upsample2 width, H/2, W/2) and the five
    encoder outputs before pooling (conv1 at H ... conv5 at H/16; CDFI's feature pyramid reads them).

    Args:
        widths: per module the conv output widths (three per conv/deconv block, one per upsample
            block), e.g. ``{"conv1": [32, 32, 32], ..., "upsample5": [512], ...}``.
        in_channels: channels of the input (6: two RGB frames).
        conv: conv factory for every conv except the very first (EDSC uses ``HetConv2d``).
        order: ``"grouped"`` registers conv1-5, deconv5-2, upsample5-2 (SepConv, EDSC);
            ``"interleaved"`` registers deconv5, upsample5, deconv4, ... (AdaCoF, CDFI). Only the
            state-dict order differs; it follows the official checkpoints.
    """

    def __init__(self, widths: Mapping[str, Sequence[int]], in_channels: int = 6, conv: ConvFactory = conv3x3,
                 order: str = "grouped") -> None:
        super().__init__()
        check_unet_widths(widths)
        cin = {"conv1": in_channels}
        for k in range(2, 6):
            cin[f"conv{k}"] = widths[f"conv{k - 1}"][-1]
        cin["deconv5"] = widths["conv5"][-1]
        for k in range(5, 1, -1):
            cin[f"upsample{k}"] = widths[f"deconv{k}"][-1]
            if k > 2:
                cin[f"deconv{k - 1}"] = widths[f"upsample{k}"][0]
        blocks: dict[str, nn.Module] = {}
        for name in UNET_MODULES:
            if name.startswith("upsample"):
                blocks[name] = upsample_block(cin[name], widths[name][0], conv)
            else:
                first = conv3x3 if name == "conv1" else None
                blocks[name] = basic_block(cin[name], widths[name], conv, first)
        if order == "grouped":
            names = [n for n in UNET_MODULES if n.startswith("conv")]
            names += [n for n in UNET_MODULES if n.startswith("deconv")]
            names += [n for n in UNET_MODULES if n.startswith("upsample")]
        elif order == "interleaved":
            names = list(UNET_MODULES)
        else:
            raise ValueError(f"unknown U-Net order {order!r}")
        for name in names:
            self.add_module(name, blocks[name])
        self.out_channels = widths["upsample2"][0]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        encoder = []
        h = x
        for k in range(1, 6):
            if k > 1:
                h = F.avg_pool2d(h, kernel_size=2, stride=2)
            h = getattr(self, f"conv{k}")(h)
            encoder.append(h)
        h = F.avg_pool2d(h, kernel_size=2, stride=2)
        h = self.deconv5(h)
        for k in range(5, 1, -1):
            h = getattr(self, f"upsample{k}")(h) + encoder[k - 1]
            if k > 2:
                h = getattr(self, f"deconv{k - 1}")(h)
        return h, encoder


def check_unet_widths(widths: Mapping[str, Sequence[int]]) -> None:
    """Validate U-Net widths: every module present, positive ints, skip additions consistent."""
    for name in UNET_MODULES:
        if name not in widths:
            raise VfikitError(f"channel spec lacks U-Net module {name!r}")
        n = 1 if name.startswith("upsample") else 3
        check_widths(name, widths[name], n)
    for k in range(2, 6):
        up, enc = widths[f"upsample{k}"][0], widths[f"conv{k}"][-1]
        if up != enc:
            raise VfikitError(
                f"channel spec: upsample{k} outputs {up} channels but it is added to conv{k}'s output of {enc}"
            )


def check_widths(name: str, values: object, n: int) -> list[int]:
    if not isinstance(values, (list, tuple)) or len(values) != n:
        raise VfikitError(f"channel spec: {name!r} must list {n} conv widths, got {values!r}")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise VfikitError(f"channel spec: {name!r} widths must be positive integers, got {values!r}")
    return list(values)


# ----------------------------------------------------------------------------------------------
# Small helpers shared by the model files


def check_choice(name: str, value: object, choices: Sequence[str]) -> str:
    if value not in choices:
        raise VfikitError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return str(value)


def check_frames(frame0: torch.Tensor, frame1: torch.Tensor) -> None:
    """Both frames (B, 3, H, W) floating tensors of one shape, dtype and device."""
    check_frame(frame0, "frame0")
    check_frame(frame1, "frame1")
    if frame0.shape != frame1.shape:
        raise VfikitError(f"frame0 and frame1 differ in shape: {tuple(frame0.shape)} vs {tuple(frame1.shape)}")
    if frame0.device != frame1.device or frame0.dtype != frame1.dtype:
        raise VfikitError(
            f"frame0 and frame1 must share device and dtype, got {frame0.device}/{frame0.dtype} "
            f"and {frame1.device}/{frame1.dtype}"
        )


def midpoint_only(t: float | torch.Tensor | None, name: str) -> None:
    """Models trained for the midpoint accept t = None or 0.5 only."""
    if t is None:
        return
    bad = not bool(torch.all(t == 0.5)) if isinstance(t, torch.Tensor) else t != 0.5
    if bad:
        shown = t.tolist() if isinstance(t, torch.Tensor) else t
        raise VfikitError(
            f"{name} only interpolates the midpoint (t=0.5), got t={shown}; "
            "use vfikit.Interpolator, which reaches other times by recursive bisection"
        )


def time_tensor(t: float | torch.Tensor | None, batch: int, like: torch.Tensor) -> torch.Tensor:
    """t as a (B,) tensor on ``like``'s device/dtype; None -> 0.5. Values must lie in [0, 1]."""
    if t is None:
        t = 0.5
    if isinstance(t, torch.Tensor):
        tt = t.to(device=like.device, dtype=like.dtype).reshape(-1)
        if tt.numel() == 1:
            tt = tt.expand(batch)
        if tt.numel() != batch:
            raise VfikitError(f"t must be a float or a ({batch},) tensor, got shape {tuple(t.shape)}")
    else:
        if isinstance(t, bool) or not isinstance(t, (int, float)):
            raise VfikitTypeError(f"t must be a float or a tensor, got {type(t).__name__}")
        tt = torch.full((batch,), float(t), device=like.device, dtype=like.dtype)
    if not bool(torch.all((tt >= 0) & (tt <= 1))):
        raise VfikitError(f"t must lie in [0, 1], got {tt.tolist()}")
    return tt


def like(x: torch.Tensor, tensors: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """``tensors`` cast to ``x``'s dtype: under autocast the heads emit fp16/bf16 while the frames stay
    fp32, and the sampling ops take one dtype (they compute in fp32 under autocast anyway)."""
    return tuple(t.to(x.dtype) for t in tensors)


def flip_channels(x: torch.Tensor, channel_order: str) -> torch.Tensor:
    """RGB <-> BGR when the network works in BGR (an exact permutation)."""
    return x.flip(1) if channel_order == "bgr" else x


def pad_to_multiple(x: torch.Tensor, multiple: int, mode: str) -> torch.Tensor:
    """Pad right and bottom to the next multiple (``mode``: "replicate" or "reflect").

    Reflect padding is applied bottom first, then right, in two steps (as AdaCoF/CDFI do); it
    needs the padding to be smaller than the side, which the caller checks.
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if mode == "reflect":
        if ph:
            x = F.pad(x, (0, 0, 0, ph), mode="reflect")
        if pw:
            x = F.pad(x, (0, pw, 0, 0), mode="reflect")
        return x
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x


def reflect_pad_fits(h: int, w: int, multiple: int) -> bool:
    """Whether reflect padding (h, w) up to ``multiple`` works: each pad must be smaller than its side."""
    return (-h) % multiple < h and (-w) % multiple < w


def camel(word: str) -> str:
    return word[:1].upper() + word[1:]


class KeyMap:
    """Ordered regex rules that turn our state-dict keys into the official ones (first match wins per rule list)."""

    def __init__(self, rules: Sequence[tuple[str, str | Callable[[re.Match[str]], str]]]) -> None:
        self.rules = [(re.compile(p), r) for p, r in rules]

    def __call__(self, key: str) -> str:
        for pattern, repl in self.rules:
            key = pattern.sub(repl, key)
        return key
