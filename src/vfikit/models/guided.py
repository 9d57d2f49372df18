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

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from vfikit.errors import VfikitError
from vfikit.models.adacof import RGB_MEAN  # the U-Net's input mean, as AdaCoF / CDFI
from vfikit.models.blocks import (
    KernelUNet,
    check_frames,
    check_unet_widths,
    check_widths,
    head,
    midpoint_only,
    time_tensor,
)
from vfikit.models.catalog import WeightSpec, register_model
from vfikit.models.cdfi import GridNet
from vfikit.models.classical import FlowDIS, FlowDISConfig
from vfikit.models.kernel_model import KernelVFIModel
from vfikit.models.motion import MotionRefiner, PairFlowRefiner
from vfikit.ops import adacof as adacof_op
from vfikit.ops import backward_warp, resolve_backend
from vfikit.ops import dsepconv as dsepconv_op
from vfikit.runtime import check_int

FLOW_SCALE = 1.0 / 16.0  # flows enter the U-Net in units of 16 px
# frame0, frame1, warp0, warp1 (RGB each), F_t0, F_t1 (x, y each), visibility of both, sin and cos of
# 2 pi F_t0 and 2 pi F_t1 (x, y each)
IN_CHANNELS = 26
# A light U-Net (the flow does the matching): about a third of compressed AdaCoF's multiply-adds.
_UNET_WIDTHS: dict[str, list[int]] = {
    "conv1": [16, 16, 16], "conv2": [32, 32, 32], "conv3": [64, 64, 64], "conv4": [96, 96, 96],
    "conv5": [128, 128, 128], "deconv5": [128, 128, 128], "upsample5": [128], "deconv4": [96, 96, 96],
    "upsample4": [96], "deconv3": [64, 64, 64], "upsample3": [64], "deconv2": [32, 32, 32], "upsample2": [32],
}
HEADS = ("weight1", "offset_y1", "offset_x1", "weight2", "offset_y2", "offset_x2", "occlusion")
DSEP_HEADS = ("vertical1", "horizontal1", "offset_y1", "offset_x1", "mask1",
              "vertical2", "horizontal2", "offset_y2", "offset_x2", "mask2", "occlusion")
GUIDED_WIDTHS: dict[str, list[int]] = {**_UNET_WIDTHS, **{name: [32, 32, 16] for name in HEADS}}
GUIDED_DSEP_WIDTHS: dict[str, list[int]] = {**_UNET_WIDTHS, **{name: [32, 32, 16] for name in DSEP_HEADS}}


def _check_guided_widths(widths: Mapping[str, Any], heads: Mapping[str, int], name: str) -> dict[str, list[int]]:
    out = {k: list(v) for k, v in widths.items()}
    check_unet_widths(out)
    for key in heads:
        if key not in out:
            raise VfikitError(f"{name} widths lack head {key!r}")
        check_widths(key, out[key], 3)
    unknown = set(out) - set(_UNET_WIDTHS) - set(heads)
    if unknown:
        raise VfikitError(f"{name} widths: unknown modules {sorted(unknown)}")
    return out


def guide_blend_weight(visibility: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The blend weight of frame0 (B, 1, H, W) that ``flow_dis`` uses, from the visibility of each frame at t
    (B, 2, H, W) and t (B,): the time weights times the visibilities, normalised; the time weight alone where
    neither frame sees the pixel. Clamped to [1e-3, 1 - 1e-3] (the guided models take its logit)."""
    tt = t.view(-1, 1, 1, 1).to(visibility.dtype)
    w0, w1 = (1 - tt) * visibility[:, :1], tt * visibility[:, 1:]
    den = w0 + w1
    b0 = torch.where(den > 1e-3, w0 / den.clamp_min(1e-6), (1 - tt).expand_as(den))
    return b0.clamp(1e-3, 1 - 1e-3)


def _submodule(cls: type[nn.Module], settings: Any, key: str, name: str) -> nn.Module:
    """``cls(**settings)`` for a model argument ``key`` (a mapping), with a clear error for anything else."""
    if not isinstance(settings, Mapping):
        raise VfikitError(f"{name}: {key} must be a mapping of {cls.__name__} settings, got {settings!r}")
    try:
        return cls(**settings)
    except TypeError as exc:
        raise VfikitError(f"{name}: {key} settings {dict(settings)} do not fit {cls.__name__}: {exc}") from None


class _GuidedBase(KernelVFIModel, ABC):
    """What the flow-guided models share: the guide, the U-Net input, padding and the blend map.

    Subclasses name their ``HEADS`` (with output channels) and implement :meth:`_synthesise`.
    ``time_input``: the U-Net also sees t (one constant channel), so one network serves any t.
    ``net_downscale``: 1 runs the U-Net at the frame's resolution; 2 runs it on the frames and fields
    downsampled by 2 and upsamples the heads' outputs (about 4x fewer multiply-adds; the guide's flows
    and the sampling stay at full resolution).
    ``motion``: settings of a :class:`vfikit.models.motion.MotionRefiner` (``{}`` for its defaults) that
    corrects the guide's flows and blend weight at t before the U-Net sees them; None: the guide's as they are.
    """

    family = "guided"
    arch_name = "guided"
    uncounted_work = "OpenCV DIS flow and splatting of the guide (numpy/OpenCV, not torch)"
    fused = False  # True: one compiled pass for sampling and blending at CPU inference (GuidedAdaCoF)
    cpu_bf16 = False  # True: precision "auto" runs the network in bf16 on native-bf16 CPUs (measured safe)
    default_widths: dict[str, list[int]] = GUIDED_WIDTHS

    def __init__(self, *, kernel_size: int, dilation: int = 1, channels: Mapping[str, Any] | None = None,
                 flow: Mapping[str, Any] | None = None, time_input: bool = False, net_downscale: int = 1,
                 motion: Mapping[str, Any] | None = None, flow_refiner: Mapping[str, Any] | None = None,
                 convention: str = "clean",
                 channel_order: str = "rgb") -> None:
        super().__init__(convention=convention, channel_order=channel_order)
        name = self.arch_name
        if convention != "clean" or channel_order != "rgb":
            raise VfikitError(f"{name} has no official checkpoint: only convention='clean', channel_order='rgb'")
        for key, v in (("kernel_size", kernel_size), ("dilation", dilation)):
            check_int(v, key, low=1)
        if kernel_size % 2 == 0:
            raise VfikitError(f"{name} centres its taps and needs an odd kernel_size, got {kernel_size}")
        if net_downscale not in (1, 2) or isinstance(net_downscale, bool):
            raise VfikitError(f"net_downscale must be 1 or 2, got {net_downscale!r}")
        widths = _check_guided_widths(channels if channels is not None else self.default_widths,
                                      self.head_channels(kernel_size), name)
        flow_settings = dict(flow or {})
        unknown = set(flow_settings) - set(FlowDISConfig.__dataclass_fields__)
        if unknown:
            raise VfikitError(f"{name}: unknown flow settings {sorted(unknown)}")
        self.kernel_size, self.dilation = kernel_size, dilation
        self.time_input, self.net_downscale = bool(time_input), net_downscale
        self.model_args.update(kernel_size=kernel_size, dilation=dilation, channels=widths, flow=flow_settings)
        if time_input:
            self.model_args["time_input"] = True
        if net_downscale != 1:
            self.model_args["net_downscale"] = net_downscale
        self.guide = FlowDIS(**flow_settings)
        # several times of one pair reuse its flows; a midpoint-only model's calls are all new pairs (bisection)
        self.guide.keep_last_pair = type(self).arbitrary_t
        self.motion = None
        if motion is not None:
            self.motion = _submodule(MotionRefiner, motion, "motion", name)
            self.model_args["motion"] = self.motion.settings
        self.flow_refiner = None
        if flow_refiner is not None:
            self.flow_refiner = _submodule(PairFlowRefiner, flow_refiner, "flow_refiner", name)
            self.model_args["flow_refiner"] = self.flow_refiner.settings
        self.unet = KernelUNet(widths, in_channels=IN_CHANNELS + int(time_input), order="interleaved")
        c = self.unet.out_channels
        self.heads = nn.ModuleDict({key: head(c, widths[key], cout)
                                    for key, cout in self.head_channels(kernel_size).items()})
        self.register_buffer("rgb_mean", torch.tensor(RGB_MEAN).view(1, 3, 1, 1), persistent=False)
        self.onnx_network = None  # an ONNX Runtime session for the U-Net and heads (inference only)
        self.reset_heads()

    @staticmethod
    @abstractmethod
    def head_channels(kernel_size: int) -> dict[str, int]:
        """Head name -> output channels."""

    @torch.no_grad()
    def warm_start(self, source: nn.Module) -> list[str]:
        """Copy every tensor of a trained guided model that this one has under the same name and shape (e.g. a
        shipped model into the same architecture with a motion refiner, which keeps its zero start). Returns
        the names of the copied tensors; refuses a source that shares none."""
        if not isinstance(source, _GuidedBase):
            raise VfikitError(f"warm start needs a guided model, got {type(source).__name__}")
        own, copied = self.state_dict(), []
        for key, value in source.state_dict().items():
            if key in own and own[key].shape == value.shape:
                own[key].copy_(value)
                copied.append(key)
        if not copied:
            raise VfikitError(f"warm start: {type(source).__name__} shares no tensor with {type(self).__name__}")
        return copied

    @torch.no_grad()
    def reset_heads(self) -> None:
        """Zero the last conv of every head: the model then computes exactly what ``flow_dis`` computes."""
        for module in self.heads.values():
            module[-1].weight.zero_()
            module[-1].bias.zero_()

    def _signed_taps(self, raw: torch.Tensor) -> torch.Tensor:
        """(B, K, H, W) head output -> signed weights over K taps summing to one, centred on the middle tap."""
        w = raw - raw.mean(1, keepdim=True)  # a new tensor: adding to its centre tap in place is safe for autograd
        w[:, raw.shape[1] // 2] += 1
        return w

    def _guide(self, frame0: torch.Tensor, frame1: torch.Tensor, t: torch.Tensor):
        """flow_dis's fields at t ((B,) tensor): F_t0, F_t1 (B, 2, H, W) (x, y), visibility (B, 2, H, W),
        b0 (B, 1, H, W): the blend weight of frame0 that flow_dis would use; and with a flow refiner the refined
        flows between the inputs that the guide splatted (``{"flow01", "flow10"}``, else an empty dict)."""
        pair: dict[str, torch.Tensor] = {}
        dis = self.guide.flows(frame0, frame1)  # the flows only (kept for the next t of the same pair)
        flow01, flow10 = dis["flow01"], dis["flow10"]
        if self.flow_refiner is not None:
            flow01, flow10 = self.flow_refiner(frame0, frame1, flow01, flow10)
            pair = {"flow01": flow01, "flow10": flow10}
        motion = self.guide.motion_from_flows(frame0, frame1, flow01, flow10, t)
        vis = motion["visibility"]
        return motion["flow_t0"], motion["flow_t1"], vis, guide_blend_weight(vis, t), pair

    def _motion_padded(self, frame0: torch.Tensor, frame1: torch.Tensor, tt: torch.Tensor) -> tuple[Any, ...]:
        """The frames, the flows at t F_t0, F_t1 (x, y), the guide's visibility and the blend weight of frame0,
        each padded (replicate) to a multiple of 32 * ``net_downscale``: (B, C, Hp, Wp); the flows and blend
        weight are the refiner's where the model has one (``tt``: (B,)). Last, ``_guide``'s pair flows dict."""
        h, w = frame0.shape[-2:]
        ft0, ft1, vis, b0, pair = self._guide(frame0, frame1, tt)
        multiple = 32 * self.net_downscale
        pad = (0, (-w) % multiple, 0, (-h) % multiple)

        def padded(x: torch.Tensor) -> torch.Tensor:
            return F.pad(x.contiguous(), pad, mode="replicate") if any(pad) else x.contiguous()

        x0, x1 = padded(frame0), padded(frame1)
        flow0, flow1, vis_p, b0_p = padded(ft0), padded(ft1), padded(vis), padded(b0)
        if self.motion is not None:  # the learned correction of the guide's motion at t
            flow0, flow1, logit = self.motion(x0, x1, flow0, flow1, torch.logit(b0_p), tt)
            b0_p = torch.sigmoid(logit).clamp(1e-3, 1 - 1e-3)
        return x0, x1, flow0, flow1, vis_p, b0_p, pair

    def motion_fields(self, frame0: torch.Tensor, frame1: torch.Tensor,
                      t: float | torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The motion at t alone, without the kernel network: ``{"flow_t0", "flow_t1"}`` (B, 2, H, W) (x, y,
        pixels) and ``"blend0"`` (B, 1, H, W), with a flow refiner also the refined flows between the inputs
        ``"flow01"``, ``"flow10"`` (B, 2, H, W): the same tensors as ``forward``'s aux (what a motion-only training
        stage needs; the refiners' where the model has them)."""
        check_frames(frame0, frame1)
        if not type(self).arbitrary_t:
            midpoint_only(t, type(self).__name__)
            t = 0.5
        h, w = frame0.shape[-2:]
        _, _, flow0, flow1, _, b0_p, pair = self._motion_padded(frame0, frame1, time_tensor(t, frame0.shape[0], frame0))
        return {"flow_t0": flow0[..., :h, :w], "flow_t1": flow1[..., :h, :w], "blend0": b0_p[..., :h, :w], **pair}

    def _trunk_outputs(self, x0, x1, flow0, flow1, vis, tt, full_size: bool = True
                       ) -> tuple[dict[str, torch.Tensor], list[torch.Tensor]]:
        """The heads' outputs (B, C, Hp, Wp), contiguous (NCHW), and the U-Net's five encoder outputs (what
        CDFI's feature pyramid reads). With ``net_downscale`` 2 the heads run at (Hp/2, Wp/2) and are
        upsampled (bilinear) to the padded frame size. ``full_size`` False: the heads as the network
        returns them (reduced resolution, any memory layout)."""
        warp0, warp1 = backward_warp(x0, flow0), backward_warp(x1, flow1)
        mean = self.rgb_mean.to(x0.dtype)
        phase = 2 * torch.pi * torch.cat([flow0, flow1], 1)
        parts = [x0 - mean, x1 - mean, warp0 - mean, warp1 - mean, flow0 * FLOW_SCALE, flow1 * FLOW_SCALE,
                 vis, torch.sin(phase), torch.cos(phase)]
        if self.time_input:
            parts.append(tt.view(-1, 1, 1, 1).to(x0.dtype).expand_as(vis[:, :1]))
        if self.net_downscale != 1:  # pooled part by part: the same values as pooling the concatenation, 2x faster
            parts = [F.avg_pool2d(part, self.net_downscale) for part in parts]
        inp = torch.cat(parts, 1)
        names = list(self.heads)
        if self.onnx_network is not None:  # vfikit.models.onnx_network.use_onnx_runtime
            out, encoder = self.onnx_network(inp), []
            sizes = list(self.head_channels(self.kernel_size).values())
            outs = dict(zip(names, torch.split(out, sizes, 1)))
        else:
            conv = self.unet.conv1[0]
            if conv.weight.is_contiguous(memory_format=torch.channels_last):
                inp = inp.contiguous(memory_format=torch.channels_last)
            trunk, encoder = self.unet(inp)
            # each head runs as a module, so that hooks (vfikit bench's MAC counter) see every conv
            outs = {k: self.heads[k](trunk) for k in names}
        if not full_size:  # as the network left them (channels-last on CPU): the fused pass reads any layout
            return outs, encoder
        if self.net_downscale != 1:
            return {k: F.interpolate(v, scale_factor=self.net_downscale, mode="bilinear", align_corners=False)
                    for k, v in outs.items()}, encoder
        return {k: v.contiguous() for k, v in outs.items()}, encoder

    def _use_fused(self, x: torch.Tensor, return_aux: bool) -> bool:
        """True where :func:`vfikit.ops.guided_synthesis.guided_adacof_synthesis` computes this forward:
        a model that supports it, float32 on CPU, no gradients, no aux, and the ops backend numba (the
        ``reference`` backend, e.g. ``VFIKIT_OPS_BACKEND=reference``, keeps the unfused path)."""
        return (self.fused and not return_aux and not torch.is_grad_enabled() and x.device.type == "cpu"
                and x.dtype == torch.float32 and resolve_backend(None, x.device) == "numba")

    def _fused_frame(self, x0, x1, flow0, flow1, b0, outs) -> torch.Tensor:
        """The blended frame (B, 3, Hp, Wp) from padded frames, flows, blend weight and the heads as
        ``_trunk_outputs(..., full_size=False)`` returns them (float32 or bf16, any layout), in one compiled
        pass that also forms the signed taps (``_tap_weights``) from the raw weight heads."""
        from vfikit.ops.guided_synthesis import guided_adacof_synthesis  # numba compiles lazily

        kernels = [(outs[f"weight{k}"], outs[f"offset_y{k}"], outs[f"offset_x{k}"]) for k in (1, 2)]
        return guided_adacof_synthesis(x0, x1, *kernels, outs["occlusion"], flow0, flow1, b0, self.dilation,
                                       signed_taps=True)

    def forward(self, frame0: torch.Tensor, frame1: torch.Tensor, t: float | torch.Tensor | None = None,
                return_aux: bool = False):
        check_frames(frame0, frame1)
        if not type(self).arbitrary_t:
            midpoint_only(t, type(self).__name__)
            t = 0.5
        tt = time_tensor(t, frame0.shape[0], frame0)
        h, w = frame0.shape[-2:]
        x0, x1, flow0, flow1, vis_p, b0_p, pair = self._motion_padded(frame0, frame1, tt)
        ft0, ft1, vis = flow0[..., :h, :w], flow1[..., :h, :w], vis_p[..., :h, :w]
        if self._use_fused(x0, return_aux):  # the same frame, fused; the unfused path below is its twin
            outs, _ = self._trunk_outputs(x0, x1, flow0, flow1, vis_p, tt, full_size=False)
            return self._fused_frame(x0, x1, flow0, flow1, b0_p, outs)[..., :h, :w]
        outs, encoder = self._trunk_outputs(x0, x1, flow0, flow1, vis_p, tt)
        occlusion = torch.sigmoid(torch.logit(b0_p) + outs["occlusion"])
        out0, out1, kernels = self._synthesise(x0, x1, flow0, flow1, outs)
        out = occlusion * out0 + (1 - occlusion) * out1
        aux = {"kernels": kernels, "occlusion": occlusion, "flow_t0": ft0, "flow_t1": ft1, "visibility": vis,
               "blend0": b0_p[..., :h, :w], **pair}
        out = self._refine(out, out0, out1, kernels, encoder, aux)[..., :h, :w]
        return (out, aux) if return_aux else out

    def _refine(self, out, out0, out1, kernels, encoder, aux) -> torch.Tensor:
        """Stage-II models change the blended frame (B, 3, Hp, Wp) here; the base returns it as it is."""
        return out

    @abstractmethod
    def _synthesise(self, x0, x1, flow0, flow1, outs):
        """Each frame's kernel-sampled prediction (B, 3, Hp, Wp) and the kernels (aux)."""


class GuidedAdaCoF(_GuidedBase):
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
    arch_name = "guided_adacof"
    default_widths = GUIDED_WIDTHS
    fused = True
    # precision "auto" runs the network in bfloat16 on CPUs with native support: 1.4x faster at 640x480,
    # frames within 3e-4 of float32 and the same PSNR to 0.01 dB (docs/benchmarks.md)
    cpu_bf16 = True

    def __init__(self, *, kernel_size: int = 5, dilation: int = 1, **kwargs: Any) -> None:
        super().__init__(kernel_size=kernel_size, dilation=dilation, **kwargs)

    @staticmethod
    def head_channels(kernel_size: int) -> dict[str, int]:
        taps = kernel_size * kernel_size
        return {name: 1 if name == "occlusion" else taps for name in HEADS}

    _tap_weights = _GuidedBase._signed_taps  # (B, F*F, H, W) head output -> signed taps summing to one

    def _synthesise(self, x0, x1, flow0, flow1, outs):
        # offsets are relative to each tap's own grid position (the op adds the grid)
        k0 = (self._tap_weights(outs["weight1"]), flow0[:, 1:] + outs["offset_y1"], flow0[:, :1] + outs["offset_x1"])
        k1 = (self._tap_weights(outs["weight2"]), flow1[:, 1:] + outs["offset_y2"], flow1[:, :1] + outs["offset_x2"])
        out0 = adacof_op(x0, *k0, self.dilation, convention="clean")
        out1 = adacof_op(x1, *k1, self.dilation, convention="clean")
        return out0, out1, [k0, k1]


class GuidedDSepConv(_GuidedBase):
    """DSepConv's deformable separable kernels placed by DIS flow, for any t (vfikit's own).

    DSepConv (AAAI 2020) samples each frame with an n x n grid of taps whose weights are the outer
    product of two 1-D kernels (``vertical``, ``horizontal``), each tap moved by its own offset and
    scaled by its own mask; flow warping is its n = 1 case. Here the n^2 offsets are the guide's flow
    plus a learned residual, the 1-D kernels are signed and sum to one (``onehot(centre) + r -
    mean(r)``, as ``guided_adacof``'s taps), and the masks are ``2 sigmoid(r)`` (1 at the start). The
    U-Net also sees t, and the guide's flows are computed at t, so one network serves every t. With
    zero heads the model is exactly ``flow_dis`` at any t.

    aux: ``{"kernels": [(v0, h0, oy0, ox0, m0), (v1, h1, oy1, ox1, m1)]`` ((B, n, Hp, Wp) kernels,
    (B, n*n, Hp, Wp) offsets with the flow included and masks), ``"occlusion"``, ``"flow_t0"``,
    ``"flow_t1"``, ``"visibility"`` as :class:`GuidedAdaCoF`}.
    """

    arbitrary_t = True
    arch_name = "guided_dsepconv"
    default_widths = GUIDED_DSEP_WIDTHS

    def __init__(self, *, kernel_size: int = 5, time_input: bool = True, **kwargs: Any) -> None:
        if "dilation" in kwargs:
            raise VfikitError("guided_dsepconv has no dilation (DSepConv's taps are one pixel apart)")
        super().__init__(kernel_size=kernel_size, dilation=1, time_input=time_input, **kwargs)
        del self.model_args["dilation"]

    @staticmethod
    def head_channels(kernel_size: int) -> dict[str, int]:
        n = kernel_size
        sizes = {"vertical": n, "horizontal": n, "offset_y": n * n, "offset_x": n * n, "mask": n * n}
        return {name: 1 if name == "occlusion" else sizes[name[:-1]] for name in DSEP_HEADS}

    def _synthesise(self, x0, x1, flow0, flow1, outs):
        kernels, preds = [], []
        for k, (x, f) in enumerate(((x0, flow0), (x1, flow1)), start=1):
            kern = (self._signed_taps(outs[f"vertical{k}"]), self._signed_taps(outs[f"horizontal{k}"]),
                    f[:, 1:] + outs[f"offset_y{k}"], f[:, :1] + outs[f"offset_x{k}"],
                    2 * torch.sigmoid(outs[f"mask{k}"]))
            kernels.append(kern)
            preds.append(dsepconv_op(x, *kern, convention="clean"))
        return preds[0], preds[1], kernels

    @torch.no_grad()
    def warm_start(self, source: nn.Module) -> list[str]:
        """Copy what fits from a trained ``guided_adacof`` model: the U-Net (t's input channel stays
        zero) and the offset and blend heads; the 1-D kernel and mask heads keep their zero last conv,
        so the result starts as flow_dis with the source's offset and blend corrections. Returns the
        names of the copied tensors."""
        if not isinstance(source, GuidedAdaCoF) or source.kernel_size != self.kernel_size:
            raise VfikitError(f"warm start needs a guided_adacof model with kernel_size={self.kernel_size}")
        copied = super().warm_start(source)  # every tensor of the same name and shape
        key = "unet.conv1.0.weight"  # one input channel more here (t): the source's channels, t's at zero
        value, target = source.state_dict()[key], self.state_dict()[key]
        if key not in copied and target.shape[1] == value.shape[1] + 1:
            target.zero_()
            target[:, : value.shape[1]].copy_(value)
            copied.append(key)
        return copied


class GuidedCDFI(GuidedAdaCoF):
    """CDFI's stage II on a flow-guided AdaCoF (vfikit's own): feature-pyramid warping and a GridNet.

    CDFI (CVPR 2021) adds to its compressed AdaCoF 1x1-conv features of the encoder, warps them with the
    same per-pixel kernels and lets a GridNet synthesise the frame from the warped frames and features,
    blended with the AdaCoF result. Here, on a (compressed) ``guided_adacof``: the first
    ``len(pyramid)`` encoder levels give ``pyramid[l]`` features each, warped *at their own resolution*
    (level scale s: tap weights averaged over s x s, offsets averaged and divided by s), upsampled to the
    frame size; the GridNet (rows at full, 1/2 and 1/4 resolution, ``grid_widths`` channels) sees the two
    kernel-sampled frames and all warped features and returns a residual ``r`` and a blend logit ``b``:
    ``frame = stage_I + sigmoid(b) * r``. Its last layer starts at zero, so the model starts exactly as
    its stage-I model (:func:`grow_guided_cdfi`) and training can only start from there.
    aux: ``guided_adacof``'s plus ``"blend"`` (B, 1, Hp, Wp), the weight of the residual.
    """

    arch_name = "guided_cdfi"
    fused = False  # its refinement reads both predictions and the kernels
    cpu_bf16 = False  # not measured in bfloat16

    def __init__(self, *, pyramid: tuple[int, ...] | list[int] = (8, 8, 8),
                 grid_widths: tuple[int, ...] | list[int] = (16, 32, 48), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        pyramid, grid_widths = [int(v) for v in pyramid], [int(v) for v in grid_widths]
        if not 1 <= len(pyramid) <= 5 or min(pyramid) < 1:
            raise VfikitError(f"guided_cdfi: pyramid needs 1 to 5 positive widths (one per level), got {pyramid}")
        if len(grid_widths) != 3 or min(grid_widths) < 1:
            raise VfikitError(f"guided_cdfi: grid_widths needs 3 positive widths, got {grid_widths}")
        self.model_args.update(pyramid=pyramid, grid_widths=grid_widths)
        widths = self.model_args["channels"]
        self.pyramid = nn.ModuleList(nn.Conv2d(widths[f"conv{k + 1}"][-1], w, 1) for k, w in enumerate(pyramid))
        self.synthesis = GridNet(6 + 2 * sum(pyramid), 4, grid_widths)
        self.reset_synthesis()

    @torch.no_grad()
    def reset_synthesis(self) -> None:
        """Zero the GridNet's last layer: residual 0, so the model computes exactly its stage-I frame."""
        final = self.synthesis.lateral_final
        for conv in (final.f[-1], final.conv):
            conv.weight.zero_()
            conv.bias.zero_()

    def _warp_level(self, feat: torch.Tensor, kernel: tuple, size: tuple[int, int]) -> torch.Tensor:
        """Warp (B, C, h, w) features with full-resolution kernels (W, oy, ox) (B, F*F, Hp, Wp) scaled to
        their level, then upsample to ``size`` (bilinear)."""
        weight, oy, ox = kernel
        scale = size[0] // feat.shape[-2]
        if scale > 1:
            weight = F.avg_pool2d(weight, scale)
            oy, ox = F.avg_pool2d(oy, scale) / scale, F.avg_pool2d(ox, scale) / scale
        warped = adacof_op(feat, weight, oy, ox, self.dilation, convention="clean")
        if scale > 1:
            warped = F.interpolate(warped, size=size, mode="bilinear", align_corners=False)
        return warped

    def _refine(self, out, out0, out1, kernels, encoder, aux) -> torch.Tensor:
        size = tuple(out.shape[-2:])
        warped = []
        for conv, enc in zip(self.pyramid, encoder):
            feat = conv(enc).contiguous()
            warped += [self._warp_level(feat, kernels[0], size), self._warp_level(feat, kernels[1], size)]
        synth = self.synthesis(torch.cat([out0, out1, *warped], 1))
        blend = torch.sigmoid(synth[:, 3:4])
        aux["blend"] = blend
        return out + blend * synth[:, :3]


def grow_guided_cdfi(source: GuidedAdaCoF, **kwargs: Any) -> GuidedCDFI:
    """CDFI's stage II from a trained (compressed) ``guided_adacof``: the same widths, kernel and guide
    settings, every stage-I weight copied, the pyramid and GridNet new (``kwargs``: ``pyramid``,
    ``grid_widths``). The result computes exactly the source's frames until it is trained."""
    if type(source) is not GuidedAdaCoF:
        raise VfikitError(f"guided_cdfi grows from a guided_adacof model, got {type(source).__name__}")
    args = {k: v for k, v in source.model_args.items() if k not in ("convention", "channel_order")}
    model = GuidedCDFI(**args, **kwargs)
    missing, unexpected = model.load_state_dict(source.state_dict(), strict=False)
    if unexpected or any(not (k.startswith("pyramid.") or k.startswith("synthesis.")) for k in missing):
        raise VfikitError(f"guided_cdfi: stage-I weights do not fit (missing {missing[:3]}, "
                          f"unexpected {unexpected[:3]})")
    return model.to(next(source.parameters()).device)


def _shipped(arch: str, psnr: float, ssim: float, training: str) -> WeightSpec:
    """The weight tag ``vfikit`` of a file this project trained and ships (``<arch>.vfikit``, MIT)."""
    return WeightSpec(tag="vfikit", format="vfikit", filename=f"{arch}.vfikit", code_license="MIT",
                      weights_license="MIT", reported_metrics={"middlebury_other": {"psnr": psnr, "ssim": ssim}},
                      notes=f"trained by vfikit on CPU ({training}; no benchmark data); model card: "
                            f"{arch}.card.json, docs/weights.md")


@register_model(
    "guided_adacof_k5",
    family="guided",
    params=2_097_479,
    description="AdaCoF kernels (F=5, D=1) placed by OpenCV DIS flow, corrected by a light U-Net (vfikit's own)",
    weights=(_shipped("guided_adacof_k5", 35.529, 0.9580,
                      "recipe vfikit_guided_adacof_k5, 8,000 steps, 1.06 h"),),
)
def guided_adacof_k5(**kwargs) -> GuidedAdaCoF:
    """Flow-guided AdaCoF, F=5, D=1."""
    return GuidedAdaCoF(**{"kernel_size": 5, "dilation": 1, **kwargs})


@register_model(
    "guided_adacof_k5_fast",
    family="guided",
    params=2_097_479,
    weights=(_shipped("guided_adacof_k5_fast", 35.546, 0.9581,
                      "run E2: 17,400 steps in five runs from guided_adacof_k5.vfikit, the last mostly on clips"),),
    description="guided_adacof_k5 with its U-Net and heads at half resolution (net_downscale=2, about 4x fewer "
                "multiply-adds; guide and sampling at full resolution), the default model (vfikit's own)",
)
def guided_adacof_k5_fast(**kwargs) -> GuidedAdaCoF:
    """Flow-guided AdaCoF, F=5, D=1, network at half resolution."""
    return GuidedAdaCoF(**{"kernel_size": 5, "dilation": 1, "net_downscale": 2, **kwargs})


@register_model(
    "guided_dsepconv",
    family="guided",
    params=2_193_003,
    description="DSepConv kernels (n=5: separable taps, per-tap offsets and masks) placed by OpenCV DIS flow, "
                "any t (vfikit's own)",
    arbitrary_t=True,
)
def guided_dsepconv(**kwargs) -> GuidedDSepConv:
    """Flow-guided DSepConv, n=5, any t."""
    return GuidedDSepConv(**{"kernel_size": 5, **kwargs})


@register_model(
    "guided_cdfi",
    family="guided",
    params=2_676_965,
    description="CDFI's stage II on the flow-guided AdaCoF (F=5): feature-pyramid warping per level + GridNet "
                "residual and blend (vfikit's own)",
)
def guided_cdfi(**kwargs) -> GuidedCDFI:
    """Flow-guided CDFI (stage II), F=5, D=1; grow it from a trained stage-I model with :func:`grow_guided_cdfi`."""
    return GuidedCDFI(**{"kernel_size": 5, "dilation": 1, **kwargs})
