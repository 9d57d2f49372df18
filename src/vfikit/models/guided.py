"""Flow-guided AdaCoF: classical DIS motion is the base of every kernel, a small network learns the rest.

Why: trained from scratch on CPU, AdaCoF's tap softmax settles on the centre tap with near-zero offsets
(a frame overlay, docs/training.md) long before its U-Net learns to match; the matching is the part a
classical estimator already does well. So this model takes it from ``flow_dis``: OpenCV DIS flow both
ways, occlusion-aware splatting to t, giving per output pixel the backward flows ``F_t0``, ``F_t1``
and each frame's visibility. A U-Net sees the frames, the two backward-warped frames, the flows and
the visibilities, and predicts what AdaCoF predicts, as corrections:

* tap offsets ``offset = F_t (all taps) + residual`` (so every F*F kernel sits where the flow points
  and can learn to fix the flow),
* tap weights ``W = onehot(centre) + r - mean(r)``: signed and summing to one, so a kernel can
  sharpen (negative lobes, e.g. undo the blur of bilinear sampling at the flow's sub-pixel phase) as
  well as spread. AdaCoF's softmax cannot: with a good flow, any non-negative spread is a blur, and
  our first guided run drove the softmax to one-hot on the centre tap and stayed exactly at flow_dis;
* the blend map ``V = sigmoid(logit(b0) + residual)`` with ``b0`` the blend weight of frame0 that
  ``flow_dis`` would use.

``frame_t = V * adacof(frame0, W0, F_t0 + r0) + (1 - V) * adacof(frame1, W1, F_t1 + r1)`` (clean
convention). The last conv of every head starts at zero, so the untrained model *is* ``flow_dis``
(up to float rounding) and training only has to improve it. The U-Net also sees the sub-pixel phase of
both flows (sin and cos of 2 pi F). The flow part runs in numpy/OpenCV on the CPU (not
differentiated); everything else runs on the model's device.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from vfikit.errors import VfikitError
from vfikit.models.adacof import RGB_MEAN  # the U-Net's input mean, as AdaCoF / CDFI
from vfikit.models.blocks import KernelUNet, check_frames, check_unet_widths, check_widths, head, midpoint_only
from vfikit.models.classical import FlowDIS, FlowDISConfig
from vfikit.models.kernel_model import KernelVFIModel
from vfikit.ops import adacof as adacof_op
from vfikit.registry import WeightSpec, register_model

FLOW_SCALE = 1.0 / 16.0  # flows enter the U-Net in units of 16 px
# frame0, frame1, warp0, warp1 (RGB each), F_t0, F_t1 (x, y each), visibility of both, sin and cos of
# 2 pi F_t0 and 2 pi F_t1 (x, y each)
IN_CHANNELS = 26
HEADS = ("weight1", "offset_y1", "offset_x1", "weight2", "offset_y2", "offset_x2", "occlusion")

# A light U-Net (the flow does the matching): about a third of compressed AdaCoF's multiply-adds.
GUIDED_WIDTHS: dict[str, list[int]] = {
    "conv1": [16, 16, 16], "conv2": [32, 32, 32], "conv3": [64, 64, 64], "conv4": [96, 96, 96],
    "conv5": [128, 128, 128], "deconv5": [128, 128, 128], "upsample5": [128], "deconv4": [96, 96, 96],
    "upsample4": [96], "deconv3": [64, 64, 64], "upsample3": [64], "deconv2": [32, 32, 32], "upsample2": [32],
    **{name: [32, 32, 16] for name in HEADS},
}


def _check_guided_widths(widths: Mapping[str, Any]) -> dict[str, list[int]]:
    out = {k: list(v) for k, v in widths.items()}
    check_unet_widths(out)
    for name in HEADS:
        if name not in out:
            raise VfikitError(f"guided_adacof widths lack head {name!r}")
        check_widths(name, out[name], 3)
    unknown = set(out) - set(GUIDED_WIDTHS)
    if unknown:
        raise VfikitError(f"guided_adacof widths: unknown modules {sorted(unknown)}")
    return out


class GuidedAdaCoF(KernelVFIModel):
    """AdaCoF kernels placed by DIS flow. ``forward(frame0, frame1, t=None, return_aux=False)``.

    Args:
        kernel_size: F, taps per axis (odd). dilation: D, tap spacing.
        channels: U-Net and head widths (default :data:`GUIDED_WIDTHS`).
        flow: settings of the ``flow_dis`` guide (:class:`vfikit.models.classical.FlowDISConfig` fields).
    aux: ``{"kernels": [(W0, oy0, ox0), (W1, oy1, ox1)]`` (full offsets, flow included, (B, F*F, Hp, Wp)),
    ``"occlusion": V`` (B, 1, Hp, Wp), ``"flow_t0"``, ``"flow_t1"`` (B, 2, H, W) (x, y) and
    ``"visibility"`` (B, 2, H, W)}. Hp, Wp: the frame size padded to a multiple of 32.
    """

    arbitrary_t = False
    family = "guided"
    uncounted_work = "OpenCV DIS flow and splatting of the guide (numpy/OpenCV, not torch)"

    def __init__(self, *, kernel_size: int = 5, dilation: int = 1, channels: Mapping[str, Any] | None = None,
                 flow: Mapping[str, Any] | None = None, convention: str = "clean", channel_order: str = "rgb") -> None:
        super().__init__(convention=convention, channel_order=channel_order)
        if convention != "clean" or channel_order != "rgb":
            raise VfikitError("guided_adacof has no official checkpoint: only convention='clean', channel_order='rgb'")
        for name, v in (("kernel_size", kernel_size), ("dilation", dilation)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise VfikitError(f"{name} must be a positive integer, got {v!r}")
        if kernel_size % 2 == 0:
            raise VfikitError(f"guided_adacof centres its taps and needs an odd kernel_size, got {kernel_size}")
        widths = _check_guided_widths(channels if channels is not None else GUIDED_WIDTHS)
        flow_settings = dict(flow or {})
        unknown = set(flow_settings) - set(FlowDISConfig.__dataclass_fields__)
        if unknown:
            raise VfikitError(f"guided_adacof: unknown flow settings {sorted(unknown)}")
        self.kernel_size, self.dilation = kernel_size, dilation
        self.model_args.update(kernel_size=kernel_size, dilation=dilation, channels=widths, flow=flow_settings)
        self.guide = FlowDIS(**flow_settings)
        self.unet = KernelUNet(widths, in_channels=IN_CHANNELS, order="interleaved")
        c, taps = self.unet.out_channels, kernel_size * kernel_size
        self.heads = nn.ModuleDict({
            name: head(c, widths[name], 1 if name == "occlusion" else taps) for name in HEADS
        })
        self.register_buffer("rgb_mean", torch.tensor(RGB_MEAN).view(1, 3, 1, 1), persistent=False)
        self.reset_heads()

    @torch.no_grad()
    def reset_heads(self) -> None:
        """Zero the last conv of every head: the model then computes exactly what ``flow_dis`` computes."""
        for module in self.heads.values():
            module[-1].weight.zero_()
            module[-1].bias.zero_()

    def _tap_weights(self, raw: torch.Tensor) -> torch.Tensor:
        """(B, F*F, H, W) head output -> signed tap weights summing to one, centred on the middle tap."""
        w = raw - raw.mean(1, keepdim=True)
        centre = self.kernel_size * self.kernel_size // 2
        return torch.cat([w[:, :centre], w[:, centre:centre + 1] + 1, w[:, centre + 1:]], 1)

    def _guide(self, frame0: torch.Tensor, frame1: torch.Tensor, t: float):
        """flow_dis's fields at t: F_t0, F_t1 (B, 2, H, W) (x, y), visibility (B, 2, H, W), b0 (B, 1, H, W)."""
        motion = self.guide.motion(frame0, frame1, t)  # the flows only: flow_dis's own warp and blend are not needed
        ft0, ft1, vis = motion["flow_t0"], motion["flow_t1"], motion["visibility"]
        w0, w1 = (1 - t) * vis[:, :1], t * vis[:, 1:]
        den = w0 + w1
        b0 = torch.where(den > 1e-3, w0 / den.clamp_min(1e-6), torch.full_like(den, 1 - t))
        return ft0, ft1, vis, b0.clamp(1e-3, 1 - 1e-3)

    def forward(self, frame0: torch.Tensor, frame1: torch.Tensor, t: float | torch.Tensor | None = None,
                return_aux: bool = False):
        check_frames(frame0, frame1)
        midpoint_only(t, type(self).__name__)
        h, w = frame0.shape[-2:]
        ft0, ft1, vis, b0 = self._guide(frame0, frame1, 0.5)
        pad = (0, (-w) % 32, 0, (-h) % 32)

        def padded(x: torch.Tensor) -> torch.Tensor:
            return F.pad(x, pad, mode="replicate") if any(pad) else x

        x0, x1 = padded(frame0), padded(frame1)
        f0, f1, vis_p, b0_p = padded(ft0), padded(ft1), padded(vis), padded(b0)
        one = torch.ones_like(b0_p)
        warp0 = adacof_op(x0, one, f0[:, 1:], f0[:, :1], 1, convention="clean")
        warp1 = adacof_op(x1, one, f1[:, 1:], f1[:, :1], 1, convention="clean")
        mean = self.rgb_mean.to(x0.dtype)
        phase = 2 * torch.pi * torch.cat([f0, f1], 1)
        inp = torch.cat([x0 - mean, x1 - mean, warp0 - mean, warp1 - mean, f0 * FLOW_SCALE, f1 * FLOW_SCALE,
                         vis_p, torch.sin(phase), torch.cos(phase)], 1)
        trunk, _ = self.unet(inp)
        hd = self.heads
        # offsets are relative to each tap's own grid position (the op adds the grid)
        k0 = (self._tap_weights(hd["weight1"](trunk)), f0[:, 1:] + hd["offset_y1"](trunk),
              f0[:, :1] + hd["offset_x1"](trunk))
        k1 = (self._tap_weights(hd["weight2"](trunk)), f1[:, 1:] + hd["offset_y2"](trunk),
              f1[:, :1] + hd["offset_x2"](trunk))
        occlusion = torch.sigmoid(torch.logit(b0_p) + hd["occlusion"](trunk))
        out0 = adacof_op(x0, *k0, self.dilation, convention="clean")
        out1 = adacof_op(x1, *k1, self.dilation, convention="clean")
        out = (occlusion * out0 + (1 - occlusion) * out1)[..., :h, :w]
        if not return_aux:
            return out
        return out, {"kernels": [k0, k1], "occlusion": occlusion, "flow_t0": ft0, "flow_t1": ft1, "visibility": vis}


@register_model(
    "guided_adacof_k5",
    family="guided",
    description="AdaCoF kernels (F=5, D=1) placed by OpenCV DIS flow, corrected by a light U-Net (vfikit's own)",
    weights=(
        WeightSpec(tag="vfikit", format="vfikit", filename="guided_adacof_k5.vfikit", code_license="MIT",
                   weights_license="MIT",
                   reported_metrics={"middlebury_other": {"psnr": 35.516, "ssim": 0.9584}},
                   notes="trained by vfikit on CPU (recipe vfikit_guided_adacof_k5, 8,000 steps, 1.06 h, no "
                         "benchmark data); model card: guided_adacof_k5.card.json, docs/weights.md"),
    ),
)
def guided_adacof_k5(**kwargs) -> GuidedAdaCoF:
    """Flow-guided AdaCoF, F=5, D=1."""
    return GuidedAdaCoF(**{"kernel_size": 5, "dilation": 1, **kwargs})
