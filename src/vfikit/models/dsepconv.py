"""DSepConv (Cheng & Chen, AAAI 2020): deformable separable convolution. RECONSTRUCTED network.

No official DSepConv network or checkpoint exists. This is the reconstruction of
``../shared/reference/sepconv_dsepconv_spec.md`` (d): EDSC_s with every heterogeneous conv replaced
by a plain 3x3 conv (i.e. the SepConv U-Net) and without the bias head; ten heads of EDSC width
(64 -> 64 -> 32 -> c): vertical/horizontal 1-D kernels (c = n), row/column offsets and masks
(c = n*n) per input frame. 21,806,350 parameters. The head widths are unverified (a SepConv-width
head would give 22,039,950).

The same class, with flags, is EDSC (``vfikit.models.edsc``): heterogeneous convs, a bias head and,
for EDSC_m, a time channel for every kernel/offset/mask head.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from vfikit.errors import VfikitError
from vfikit.models.blocks import (
    SEPCONV_UNET_WIDTHS,
    HetConv2d,
    KernelUNet,
    KeyMap,
    camel,
    check_frames,
    conv3x3,
    flip_channels,
    head,
    like,
    midpoint_only,
    pad_to_multiple,
    time_tensor,
)
from vfikit.models.catalog import register_model
from vfikit.models.kernel_model import KernelVFIModel
from vfikit.ops import dsepconv as dsepconv_op

_HEAD_NAMES = ("vertical1", "vertical2", "horizontal1", "horizontal2",
               "offset_y1", "offset_x1", "offset_y2", "offset_x2", "mask1", "mask2")
# Our head name -> the official (EDSC) module suffix. The official Offset*x moves ROWS (it is the
# op's 4th argument) and Offset*y moves columns; our names say what they move.
_OFFICIAL_HEAD = {"vertical1": "Vertical1", "vertical2": "Vertical2", "horizontal1": "Horizontal1",
                  "horizontal2": "Horizontal2", "offset_y1": "Offset1x", "offset_x1": "Offset1y",
                  "offset_y2": "Offset2x", "offset_x2": "Offset2y", "mask1": "Mask1", "mask2": "Mask2",
                  "bias": "Bias"}


class DSepConv(KernelVFIModel):
    """Deformable separable convolution network (DSepConv, and EDSC through the flags).

    ``forward(frame0, frame1, t=None, return_aux=False)``: frames (B, 3, H, W) RGB in [0, 1].
    ``frame_t = dsepconv(frame0, v1, h1, oy1, ox1, m1) + dsepconv(frame1, v2, h2, oy2, ox2, m2)``
    (+ ``bias(trunk)`` for EDSC).

    Args:
        kernel_size: n, taps per axis (5).
        hetconv: EDSC's heterogeneous convs (groups ``het_groups``) in the U-Net (all but the first conv).
        bias_head: EDSC's residual bias head (3 channels added to the output).
        time_input: EDSC_m: every kernel/offset/mask head also reads a constant map t (frame-0
            heads) or 1 - t (frame-1 heads); then t is a native input in [0, 1].
        convention: ``"clean"`` (default): replicate-pad right/bottom to a multiple of 32, clean op
            (centred taps, clamped bilinear) on the frames. ``"official"``: the same padding, then a
            (n // 2)-px replicate border and the authors' op (uncentred taps, doubled border weights).
        channel_order: ``"rgb"`` or ``"bgr"`` (EDSC's official weights work in BGR).
    aux: ``{"kernels": [(vertical1, horizontal1, offset_y1, offset_x1, mask1), (... frame 1 ...)]}`` at
    the padded working size (vertical/horizontal (B, n, Hp, Wp), the rest (B, n*n, Hp, Wp)), plus
    ``"bias"`` (B, 3, Hp, Wp) when the bias head exists.
    """

    arbitrary_t = False
    official_format = "edsc"
    official_channel_order = "bgr"
    _official_keys = KeyMap([
        (r"^unet\.(conv|deconv|upsample)(\d)", lambda m: f"module{camel(m[1])}{m[2]}"),
        (r"^heads\.(\w+?)\.", lambda m: f"module{_OFFICIAL_HEAD[m[1]]}."),
        (r"\.grouped3x3\.", ".conv3x3."),
        (r"\.grouped1x1\.", ".conv1x1_."),
        (r"\.full1x1\.", ".conv1x1."),
    ])

    def __init__(self, *, kernel_size: int = 5, hetconv: bool = False, het_groups: int = 4, bias_head: bool = False,
                 time_input: bool = False, convention: str = "clean", channel_order: str = "rgb") -> None:
        super().__init__(convention=convention, channel_order=channel_order)
        if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise VfikitError(f"kernel_size must be a positive odd integer, got {kernel_size!r}")
        self.kernel_size = kernel_size
        self.hetconv, self.bias_head, self.time_input = bool(hetconv), bool(bias_head), bool(time_input)
        self.arbitrary_t = self.time_input
        self.model_args.update(kernel_size=kernel_size, hetconv=self.hetconv, het_groups=het_groups,
                               bias_head=self.bias_head, time_input=self.time_input)

        def het(cin: int, cout: int) -> nn.Module:
            return HetConv2d(cin, cout, het_groups)

        self.unet = KernelUNet(SEPCONV_UNET_WIDTHS, conv=het if hetconv else conv3x3, order="grouped")
        c, n = self.unet.out_channels, kernel_size
        cin = c + 1 if time_input else c
        heads: dict[str, nn.Module] = {}
        for name in _HEAD_NAMES:
            cout = n if name.startswith(("vertical", "horizontal")) else n * n
            heads[name] = head(cin, (64, 32, cout), cout, "sigmoid" if name.startswith("mask") else None)
        if bias_head:
            heads["bias"] = head(c, (64, 32, 3), 3)
        self.heads = nn.ModuleDict(heads)

    def forward(self, frame0: torch.Tensor, frame1: torch.Tensor, t: float | torch.Tensor | None = None,
                return_aux: bool = False):
        check_frames(frame0, frame1)
        if not self.time_input:
            midpoint_only(t, type(self).__name__)
        h0, w0 = frame0.shape[-2:]
        x0 = pad_to_multiple(flip_channels(frame0, self.channel_order), 32, "replicate")
        x1 = pad_to_multiple(flip_channels(frame1, self.channel_order), 32, "replicate")
        trunk, _ = self.unet(torch.cat([x0, x1], 1))
        in0 = in1 = trunk
        if self.time_input:
            tt = time_tensor(t, trunk.shape[0], trunk)
            tmap = torch.ones_like(trunk[:, :1]) * tt.view(-1, 1, 1, 1)
            in0, in1 = torch.cat([trunk, tmap], 1), torch.cat([trunk, 1 - tmap], 1)
        k0 = tuple(self.heads[f"{name}1"](in0) for name in ("vertical", "horizontal", "offset_y", "offset_x", "mask"))
        k1 = tuple(self.heads[f"{name}2"](in1) for name in ("vertical", "horizontal", "offset_y", "offset_x", "mask"))
        if self.convention == "official":
            p = self.kernel_size // 2
            s0, s1 = F.pad(x0, (p,) * 4, mode="replicate"), F.pad(x1, (p,) * 4, mode="replicate")
        else:
            s0, s1 = x0, x1
        out = (dsepconv_op(s0, *like(s0, k0), convention=self.convention)
               + dsepconv_op(s1, *like(s1, k1), convention=self.convention))
        aux: dict = {"kernels": [k0, k1]}
        if self.bias_head:
            bias = self.heads["bias"](trunk)
            out = out + bias
            aux["bias"] = bias
        out = flip_channels(out[..., :h0, :w0], self.channel_order)
        return (out, aux) if return_aux else out


@register_model(
    "dsepconv",
    family="dsepconv",
    params=21_806_350,
    description="DSepConv (AAAI 2020), RECONSTRUCTED (no official network/weights exist): SepConv U-Net + "
                "EDSC-width kernel/offset/mask heads, deformable separable convolution n=5",
)
def dsepconv(**kwargs) -> DSepConv:
    """DSepConv, reconstructed (21,806,350 parameters). See the module docstring."""
    for fixed in ("hetconv", "bias_head", "time_input"):
        if kwargs.pop(fixed, False):
            raise VfikitError(f"dsepconv has no {fixed!r} (it is fixed to False); use the edsc_s / edsc_m models")
    return DSepConv(**kwargs)
