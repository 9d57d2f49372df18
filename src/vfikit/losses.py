"""Training losses, computed outside the model.

Functional terms (``charbonnier``, ``gradient_difference``, ``offset_smoothness``,
``occlusion_smoothness``) plus ``VGG16Features`` for the perceptual term, and the configurable
``CompositeLoss`` built from a list of ``{name, weight, ...params}`` entries (see ``TERMS``).

Facts from the papers (specs: adacof_cdfi_spec.md §2.4/§6, sepconv_dsepconv_spec.md (f)):

* Charbonnier: ``mean(sqrt((pred - target)^2 + 1e-6))`` (epsilon 1e-3, squared).
* ``g_spatial`` (AdaCoF/CDFI): for (weight, offset) in the four (W1, oy1), (W1, ox1), (W2, oy2),
  (W2, ox2) pairs, ``m = mean over taps of W * offset`` and the term is the Charbonnier of the
  horizontal plus vertical neighbour differences of ``m``; summed over the four pairs.
* ``g_occlusion`` (AdaCoF): Charbonnier of the neighbour differences of the occlusion map.
* ``flow_hint`` (ours, not in the papers): kernels' mean displacement vs OpenCV DIS flow from the
  target to each input frame; see ``FlowHintTerm``.
* VGG: VGG16 ``features[:22]`` (up to conv4_3, before its ReLU) on raw [0, 1] RGB, MSE of
  features, target features without gradient.
* DSepConv: Charbonnier on the output and on the output of the model run on the swapped inputs
  (``temporal_flip``), plus a gradient-difference term over four directions (its exact form and
  weight are not confirmed by the sources; see ``gradient_difference``).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vfikit.errors import VfikitError
from vfikit.ops import backward_warp
from vfikit.runtime import torch_load

CHARBONNIER_EPS = 1e-6


# ----------------------------------------------------------------------------------------------
# functional terms


def charbonnier(pred: torch.Tensor, target: torch.Tensor | None = None, eps: float = CHARBONNIER_EPS) -> torch.Tensor:
    """Mean of ``sqrt((pred - target)^2 + eps)`` over all elements (``target=None`` means zero).

    ``eps`` is added to the square (the papers' 1e-6, i.e. epsilon 1e-3). Any shapes that broadcast.
    """
    diff = pred if target is None else pred - target
    return torch.sqrt(diff * diff + eps).mean()


def _neighbour_diffs(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(x[..., :, :-1] - x[..., :, 1:], x[..., :-1, :] - x[..., 1:, :]) for a (..., H, W) tensor."""
    return x[..., :, :-1] - x[..., :, 1:], x[..., :-1, :] - x[..., 1:, :]


def _directional_gradient(x: torch.Tensor, direction: str) -> torch.Tensor:
    """``x(p) - x(p + d)`` for d in up/down/left/right, zero where p + d leaves the image. (B,C,H,W)."""
    out = torch.zeros_like(x)
    if direction == "down":
        out[..., :-1, :] = x[..., :-1, :] - x[..., 1:, :]
    elif direction == "up":
        out[..., 1:, :] = x[..., 1:, :] - x[..., :-1, :]
    elif direction == "right":
        out[..., :, :-1] = x[..., :, :-1] - x[..., :, 1:]
    elif direction == "left":
        out[..., :, 1:] = x[..., :, 1:] - x[..., :, :-1]
    else:
        raise VfikitError(f"unknown gradient direction {direction!r}")
    return out


GRADIENT_DIRECTIONS = ("up", "down", "left", "right")


def gradient_difference(pred: torch.Tensor, target: torch.Tensor, eps: float = CHARBONNIER_EPS) -> torch.Tensor:
    """DSepConv's sharpness loss: ``sum_d mean_p rho(|grad_d pred(p)| - |grad_d target(p)|)``.

    ``grad_d I(p) = I(p) - I(p + d)`` for d in up, down, left, right (zero at the border it would
    leave), rho the Charbonnier penalty. pred, target: (B, C, H, W). The review of the paper gives
    this form (difference of absolute neighbour differences); the exact combination is not
    confirmed by the authors' code (there is none).
    """
    total = pred.new_zeros(())
    for d in GRADIENT_DIRECTIONS:
        gp = _directional_gradient(pred, d).abs()
        gt = _directional_gradient(target, d).abs()
        total = total + charbonnier(gp, gt, eps)
    return total


def _check_adacof_aux(aux: dict | None, need: str) -> dict:
    if aux is None:
        raise VfikitError(f"the {need} loss needs the model's aux outputs, but none were given")
    if "kernels" not in aux:
        raise VfikitError(f"the {need} loss needs aux['kernels']; the model returned keys {sorted(aux)}")
    return aux


def offset_smoothness(kernels: list | tuple, eps: float = CHARBONNIER_EPS) -> torch.Tensor:
    """AdaCoF/CDFI ``g_Spatial`` from ``aux["kernels"] = [(weight, offset_y, offset_x), ...]``.

    Each tensor is (B, F*F, H, W). For every (weight, offset) pair in the order (w1, oy1), (w1, ox1),
    (w2, oy2), (w2, ox2): ``m = mean over the F*F taps of weight * offset`` (B, 1, H, W) and
    ``g = charb(m[..., :, :-1] - m[..., :, 1:]) + charb(m[..., :-1, :] - m[..., 1:, :])``; the sum of the four g.
    """
    total = None
    for i, entry in enumerate(kernels):
        if len(entry) != 3:
            raise VfikitError(
                f"g_spatial expects aux['kernels'] entries (weight, offset_y, offset_x) as the AdaCoF family "
                f"returns, but entry {i} has {len(entry)} tensors (DSepConv/EDSC aux has no g_spatial term)"
            )
        weight, offset_y, offset_x = entry
        for offset in (offset_y, offset_x):
            m = (weight * offset).mean(dim=1, keepdim=True)
            dx, dy = _neighbour_diffs(m)
            g = charbonnier(dx, eps=eps) + charbonnier(dy, eps=eps)
            total = g if total is None else total + g
    if total is None:
        raise VfikitError("g_spatial: aux['kernels'] is empty")
    return total


def kernel_displacement(weight: torch.Tensor, offset_y: torch.Tensor, offset_x: torch.Tensor,
                        dilation: int = 1) -> torch.Tensor:
    """Mean sampling displacement of AdaCoF taps in the clean convention: (B, 2, H, W) = (x, y).

    ``sum_t weight_t * (tap_t + offset_t)`` with the centred tap grid ``tap_t = ((k - (F-1)/2) D,
    (l - (F-1)/2) D)`` for ``t = F*k + l``; inputs are (B, F*F, H, W).
    """
    taps = weight.shape[1]
    f = math.isqrt(taps)
    if f * f != taps or offset_y.shape != weight.shape or offset_x.shape != weight.shape:
        raise VfikitError(f"kernel_displacement: expected three (B, F*F, H, W) tensors, got "
                          f"{tuple(weight.shape)}, {tuple(offset_y.shape)}, {tuple(offset_x.shape)}")
    grid = (torch.arange(f, dtype=weight.dtype, device=weight.device) - (f - 1) / 2) * dilation
    tap_y = grid.repeat_interleave(f).view(1, taps, 1, 1)
    tap_x = grid.repeat(f).view(1, taps, 1, 1)
    return torch.stack([(weight * (offset_x + tap_x)).sum(1), (weight * (offset_y + tap_y)).sum(1)], 1)


def teacher_flow(source: torch.Tensor, dest: torch.Tensor, preset: str = "medium",
                 init_scale: int | None = None) -> torch.Tensor:
    """OpenCV DIS flow from each ``source`` image to ``dest`` as (B, 2, H, W) = (x, y), no gradient:
    ``source(p) ~ dest(p + flow(p))``. Inputs (B, 3, H, W) in [0, 1]. ``init_scale``: k starts the DIS
    pass from one at 1/2**k of the size, as the guide of the guided models does (None: one pass)."""
    import numpy as np

    from vfikit.models.classical import FlowDISConfig, dis_flow, gray_u8

    cfg = FlowDISConfig(preset=preset, init_scale=init_scale, large_side=None)
    src = source.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
    dst = dest.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
    flows = [dis_flow(cfg, gray_u8(a), gray_u8(b)) for a, b in zip(src, dst)]
    out = torch.from_numpy(np.ascontiguousarray(np.stack(flows))).permute(0, 3, 1, 2)
    return out.to(device=source.device, dtype=source.dtype)


def warp_error(source: torch.Tensor, target: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W): the mean absolute colour difference between ``source`` warped by ``flow`` ((B, 2, H, W),
    (x, y)) and ``target``, per pixel; no gradient."""
    with torch.no_grad():
        return (backward_warp(source.float(), flow.float()) - target.float()).abs().mean(1, keepdim=True)


def teacher_where_better(target: torch.Tensor, source: torch.Tensor, flow: torch.Tensor, margin: float,
                         preset: str = "medium", init_scale: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The DIS teacher flow from ``target`` to ``source`` (:func:`teacher_flow`) and the (B, 1, H, W) mask of the
    pixels where ``source`` warped by it matches ``target`` better, by ``margin``, than warped by ``flow``: the
    privileged teacher, trusted only where it is right and the model is not."""
    teacher = teacher_flow(target, source, preset, init_scale)
    better = warp_error(source, target, teacher) + margin < warp_error(source, target, flow)
    return teacher, better.to(flow.dtype)


def occlusion_smoothness(occlusion: torch.Tensor, eps: float = CHARBONNIER_EPS) -> torch.Tensor:
    """AdaCoF ``g_Occlusion``: ``charb(dx V) + charb(dy V)`` for the (B, 1, H, W) occlusion map V."""
    dx, dy = _neighbour_diffs(occlusion)
    return charbonnier(dx, eps=eps) + charbonnier(dy, eps=eps)


# ----------------------------------------------------------------------------------------------
# VGG16 feature stack (our own code; weights from a user-supplied file)

# torchvision's vgg16 ``features`` indices: conv layers, ReLU after each, max-pool where "M".
_VGG16_PLAN = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512)
VGG16_LAYERS = {"conv1_2": 2, "conv2_2": 7, "conv3_3": 14, "conv4_3": 21}  # index of the conv (no ReLU)


class VGG16Features(nn.Module):
    """VGG16 convolutional features up to a conv layer (default conv4_3, before its ReLU).

    Parameter names match torchvision's ``vgg16().features`` (``features.0.weight`` ...), so a
    torchvision state dict loads as is. Input: (B, 3, H, W) RGB; output (B, 512, H/8, W/8) for conv4_3.
    """

    def __init__(self, layer: str = "conv4_3") -> None:
        super().__init__()
        if layer not in VGG16_LAYERS:
            raise VfikitError(f"unknown VGG16 layer {layer!r}; choose one of {sorted(VGG16_LAYERS)}")
        last = VGG16_LAYERS[layer]
        modules: list[nn.Module] = []
        cin = 3
        for item in _VGG16_PLAN:
            if item == "M":
                modules.append(nn.MaxPool2d(2, 2))
            else:
                modules.append(nn.Conv2d(cin, int(item), 3, padding=1))
                modules.append(nn.ReLU(inplace=False))
                cin = int(item)
        self.features = nn.Sequential(*modules[: last + 1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def load_weights(self, path: str | Path) -> None:
        """Load VGG16 weights from a torchvision-style ``.pth`` or a ``.safetensors`` file.

        Keys may be ``features.N.weight`` (a whole torchvision vgg16 state dict; classifier keys are
        ignored) or ``N.weight``. Missing keys or wrong shapes raise VfikitError.
        """
        path = Path(path).expanduser()
        if not path.is_file():
            raise VfikitError(
                f"VGG16 weights file not found: {path} (vfikit downloads nothing; get torchvision's "
                f"vgg16-397923af.pth or any VGG16 state dict and give its path as the loss's 'weights')"
            )
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch_load(path, "VGG16 weights")
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise VfikitError(f"VGG16 weights {path} do not hold a state dict")
        own = self.state_dict()
        picked = {}
        for key, param in own.items():
            short = key[len("features."):]
            found = state.get(key, state.get(short))
            if found is None:
                raise VfikitError(f"VGG16 weights {path} lack {key!r} (or {short!r})")
            if tuple(found.shape) != tuple(param.shape):
                raise VfikitError(
                    f"VGG16 weights {path}: {key} has shape {tuple(found.shape)}, expected {tuple(param.shape)}"
                )
            picked[key] = found
        self.load_state_dict(picked)


_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


# ----------------------------------------------------------------------------------------------
# configurable terms


@dataclass
class LossInputs:
    """Everything a loss term may look at (batched, B first).

    ``pred``/``target``/``frame0``/``frame1``: (B, 3, H, W); ``t``: (B,); ``aux``: the model's aux
    dict (None unless a term needs it); ``pred`` is None when no term needs the frame
    (``CompositeLoss.needs_frame``); ``pred_flipped``: the model's output on (frame1, frame0, 1 - t)
    (None unless a term needs it).
    """

    pred: torch.Tensor | None
    target: torch.Tensor
    frame0: torch.Tensor | None = None
    frame1: torch.Tensor | None = None
    t: torch.Tensor | None = None
    aux: dict | None = None
    pred_flipped: torch.Tensor | None = None
    motion: torch.Tensor | None = None
    motion_known: torch.Tensor | None = None


class LossTerm(nn.Module):
    """One named loss term: subclasses define ``forward(inputs: LossInputs) -> scalar tensor`` and say
    whether they need aux outputs or the flipped run."""

    needs_aux: bool = False
    needs_flip: bool = False
    needs_frame: bool = True  # False: the term reads only the aux motion (training may skip the synthesis)


class CharbonnierTerm(LossTerm):
    def __init__(self, eps: float = CHARBONNIER_EPS) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, inputs: LossInputs) -> torch.Tensor:
        return charbonnier(inputs.pred, inputs.target, self.eps)


class L1Term(LossTerm):
    def forward(self, inputs: LossInputs) -> torch.Tensor:
        return F.l1_loss(inputs.pred, inputs.target)


class MSETerm(LossTerm):
    def forward(self, inputs: LossInputs) -> torch.Tensor:
        return F.mse_loss(inputs.pred, inputs.target)


class GradientDifferenceTerm(LossTerm):
    def __init__(self, eps: float = CHARBONNIER_EPS) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, inputs: LossInputs) -> torch.Tensor:
        return gradient_difference(inputs.pred, inputs.target, self.eps)


class TemporalFlipTerm(LossTerm):
    """Charbonnier of the model's output on the swapped inputs at 1 - t.

    ``against="target"`` (DSepConv: the flipped run must also reproduce the ground truth) or
    ``"prediction"`` (consistency between the two runs, no ground truth).
    """

    needs_flip = True

    def __init__(self, against: str = "target", eps: float = CHARBONNIER_EPS) -> None:
        super().__init__()
        if against not in ("target", "prediction"):
            raise VfikitError(f"temporal_flip: against must be 'target' or 'prediction', got {against!r}")
        self.against = against
        self.eps = eps

    def forward(self, inputs: LossInputs) -> torch.Tensor:
        if inputs.pred_flipped is None:
            raise VfikitError("temporal_flip needs pred_flipped (the model's output on swapped inputs)")
        ref = inputs.target if self.against == "target" else inputs.pred
        return charbonnier(inputs.pred_flipped, ref, self.eps)


class SpatialTerm(LossTerm):
    """AdaCoF/CDFI ``g_Spatial`` from ``aux["kernels"]``."""

    needs_aux = True

    def forward(self, inputs: LossInputs) -> torch.Tensor:
        aux = _check_adacof_aux(inputs.aux, "g_spatial")
        return offset_smoothness(aux["kernels"])


class OcclusionTerm(LossTerm):
    """AdaCoF ``g_Occlusion`` from ``aux["occlusion"]``."""

    needs_aux = True

    def forward(self, inputs: LossInputs) -> torch.Tensor:
        if inputs.aux is None or "occlusion" not in inputs.aux:
            keys = None if inputs.aux is None else sorted(inputs.aux)
            raise VfikitError(f"g_occlusion needs aux['occlusion']; the model returned aux keys {keys}")
        return occlusion_smoothness(inputs.aux["occlusion"])


class FlowHintTerm(LossTerm):
    """Distillation of motion from a classical flow on the training data (AdaCoF family).

    For each input frame j, the Charbonnier of ``kernel_displacement(aux["kernels"][j]) - teacher``
    (pixels), with ``teacher = teacher_flow(target, frame_j)``: where each pixel of the true middle
    frame lies in frame j, by OpenCV DIS. Unsupervised kernel training finds motion slowly from the
    local gradients of bilinear sampling, and on short CPU runs the tap softmax settled on a frame
    overlay before it did; the hint points the kernels at the motion from the first step. The
    teacher is wrong at occlusions and on flat regions, so keep the weight small (e.g. 0.01): the
    image loss decides. ``dilation``: the model's tap spacing D. ``init_scale``: the teacher's DIS
    starts from a pass at 1/2**k of the size (the guided models' guide uses 2).

    ``mask`` ``"teacher_better"`` (privileged distillation, as RIFE does with its teacher): a pixel
    counts only where frame j warped by the teacher matches the target better, by ``margin`` (mean
    absolute colour difference in [0, 1]), than warped by the model's own displacement; the sum is
    divided by all pixels, so the term fades as the model catches up. ``"none"``: every pixel counts.
    """

    needs_aux = True

    def __init__(self, dilation: int = 1, preset: str = "medium", init_scale: int | None = None,
                 mask: str = "none", margin: float = 0.01) -> None:
        super().__init__()
        if mask not in ("none", "teacher_better"):
            raise VfikitError(f"flow_hint mask must be 'none' or 'teacher_better', got {mask!r}")
        if init_scale is not None and (isinstance(init_scale, bool) or not isinstance(init_scale, int)
                                       or init_scale < 1):
            raise VfikitError(f"flow_hint init_scale must be a positive integer or null, got {init_scale!r}")
        self.dilation, self.preset, self.init_scale = dilation, preset, init_scale
        self.mask, self.margin = mask, float(margin)

    def forward(self, inputs: LossInputs) -> torch.Tensor:
        aux = _check_adacof_aux(inputs.aux, "flow_hint")
        if inputs.frame0 is None or inputs.frame1 is None:
            raise VfikitError("the flow_hint loss needs the input frames")
        h, w = inputs.target.shape[-2:]
        total = None
        for frame, entry in zip((inputs.frame0, inputs.frame1), aux["kernels"]):
            if len(entry) != 3:
                raise VfikitError("flow_hint expects aux['kernels'] entries (weight, offset_y, offset_x)")
            disp = kernel_displacement(*(x[..., :h, :w] for x in entry), dilation=self.dilation)
            if self.mask == "none":
                term = charbonnier(disp - teacher_flow(inputs.target, frame, self.preset, self.init_scale))
            else:
                teacher, better = teacher_where_better(inputs.target, frame, disp, self.margin, self.preset,
                                                       self.init_scale)
                term = (better * torch.sqrt((disp - teacher) ** 2 + CHARBONNIER_EPS)).mean()
            total = term if total is None else total + term
        return total


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` (B, C, H, W) over the pixels where ``mask`` (B, 1, H, W) is 1 (0 when there are none)."""
    return (values * mask).sum() / (mask.sum() * values.shape[1]).clamp_min(1.0)


def _flow_charbonnier(flow: torch.Tensor, exact: torch.Tensor, seen: torch.Tensor, eps: float) -> torch.Tensor:
    """The Charbonnier of a flow's error (B, 2, H, W) against ``exact``, averaged over the pixels ``seen``."""
    return _masked_mean(torch.sqrt((flow - exact) ** 2 + eps), seen)


class MotionTerm(LossTerm):
    """Dense supervision of a model's motion at t: ``aux["flow_t0"]``, ``aux["flow_t1"]`` (B, 2, H, W) (x, y).

    * Samples whose exact motion is known (``LossInputs.motion``, the synthetic scenes): the Charbonnier of the
      flow error on the pixels visible in that frame, averaged over them; and, with weight ``blend``, the binary
      cross-entropy of the blend weight ``aux["blend0"]`` where exactly one frame sees the pixel (1 where only
      frame0 does, 0 where only frame1 does).
    * Other samples (real clips): the DIS flow from the true frame to each input is the teacher, counted only
      where frame j warped by it matches the target better, by ``margin`` (mean absolute colour difference in
      [0, 1]), than warped by the model's flow (a teacher trusted everywhere also teaches DIS's mistakes).
      The sum is divided by all pixels, so the term fades where the model is as good as the teacher.
      ``preset`` and ``init_scale``: the teacher's DIS settings (the guide's own by default).
    """

    needs_aux = True
    needs_frame = False

    def __init__(self, margin: float = 0.01, preset: str = "medium", init_scale: int | None = 2,
                 blend: float = 0.1, eps: float = CHARBONNIER_EPS) -> None:
        super().__init__()
        self.margin, self.preset, self.init_scale = float(margin), preset, init_scale
        self.blend, self.eps = float(blend), eps

    def forward(self, inputs: LossInputs) -> torch.Tensor:
        aux = inputs.aux or {}
        if "flow_t0" not in aux or "blend0" not in aux or inputs.frame0 is None or inputs.frame1 is None:
            raise VfikitError("the motion loss needs a guided model's aux flows (flow_t0, flow_t1, blend0) "
                              "and the input frames")
        flows = (aux["flow_t0"].float(), aux["flow_t1"].float())
        known = inputs.motion_known
        if known is None:
            known = torch.zeros(flows[0].shape[0], dtype=torch.bool, device=flows[0].device)
        total = flows[0].new_zeros(())
        if bool(known.any()):
            total = total + self._exact(flows, aux["blend0"].float(), inputs.motion, known)
        if not bool(known.all()):
            total = total + self._taught(flows, inputs, ~known)
        return total

    def _exact(self, flows, blend0: torch.Tensor, motion: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        """Flow and blend errors against the exact motion of the ``known`` samples."""
        motion = motion[known].float()
        total = blend0.new_zeros(())
        for j, flow in enumerate(flows):
            total = total + _flow_charbonnier(flow[known], motion[:, 2 * j : 2 * j + 2], motion[:, 4 + j : 5 + j],
                                              self.eps)
        if self.blend > 0:
            only0 = motion[:, 4:5] * (1 - motion[:, 5:6])
            only1 = motion[:, 5:6] * (1 - motion[:, 4:5])
            p = blend0[known].clamp(1e-4, 1 - 1e-4)
            bce = -(only0 * torch.log(p) + only1 * torch.log(1 - p))
            total = total + self.blend * bce.sum() / (only0 + only1).sum().clamp_min(1.0)
        return total

    def _taught(self, flows, inputs: LossInputs, rows: torch.Tensor) -> torch.Tensor:
        """The masked teacher term on the samples ``rows`` (no exact motion)."""
        target = inputs.target[rows].float()
        total = target.new_zeros(())
        for frame, flow in zip((inputs.frame0, inputs.frame1), flows):
            flow = flow[rows]
            teacher, better = teacher_where_better(target, frame[rows], flow, self.margin, self.preset,
                                                   self.init_scale)
            total = total + (better * torch.sqrt((flow - teacher) ** 2 + self.eps)).mean()
        return total


class PairFlowTerm(LossTerm):
    """Dense supervision of a model's refined flows between the inputs, ``aux["flow01"]``, ``aux["flow10"]``
    (B, 2, H, W) (x, y; a guided model with a ``flow_refiner``): the Charbonnier of their error against the exact
    flows of the samples whose motion is known (``LossInputs.motion`` channels 6-11, the synthetic scenes), on the
    pixels seen in the other frame. Samples without exact motion add nothing (0 when a batch has none)."""

    needs_aux = True
    needs_frame = False

    def __init__(self, eps: float = CHARBONNIER_EPS) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, inputs: LossInputs) -> torch.Tensor:
        aux = inputs.aux or {}
        if "flow01" not in aux or "flow10" not in aux:
            raise VfikitError("the pair_flow loss needs a guided model with a flow_refiner (aux flow01, flow10)")
        flows = (aux["flow01"].float(), aux["flow10"].float())
        known = inputs.motion_known
        total = flows[0].new_zeros(())
        if inputs.motion is None or known is None or not bool(known.any()):
            return total
        motion = inputs.motion[known].float()
        for j, flow in enumerate(flows):
            total = total + _flow_charbonnier(flow[known], motion[:, 6 + 2 * j : 8 + 2 * j],
                                              motion[:, 10 + j : 11 + j], self.eps)
        return total


class VGGTerm(LossTerm):
    """MSE between VGG16 features (default conv4_3 before ReLU) of prediction and target.

    ``weights``: path of a VGG16 state dict (torchvision layout); required, nothing is downloaded.
    ``normalize``: apply ImageNet mean/std first (the papers do not: default False).
    """

    def __init__(self, weights: str | None = None, layer: str = "conv4_3", normalize: bool = False) -> None:
        super().__init__()
        if not weights:
            raise VfikitError(
                "the vgg loss needs 'weights': the path of a VGG16 state dict (e.g. torchvision's "
                "vgg16-397923af.pth); vfikit downloads nothing"
            )
        self.net = VGG16Features(layer)
        self.net.load_weights(weights)
        self.net.eval()
        self.net.requires_grad_(False)
        self.normalize = normalize
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> VGGTerm:
        super().train(mode)
        self.net.eval()  # frozen feature extractor
        return self

    def _prep(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std if self.normalize else x

    def forward(self, inputs: LossInputs) -> torch.Tensor:
        with torch.no_grad():
            target_feat = self.net(self._prep(inputs.target))
        return F.mse_loss(self.net(self._prep(inputs.pred)), target_feat)


TERMS: dict[str, Callable[..., LossTerm]] = {
    "charbonnier": CharbonnierTerm,
    "l1": L1Term,
    "mse": MSETerm,
    "gradient_difference": GradientDifferenceTerm,
    "temporal_flip": TemporalFlipTerm,
    "g_spatial": SpatialTerm,
    "g_occlusion": OcclusionTerm,
    "flow_hint": FlowHintTerm,
    "motion": MotionTerm,
    "pair_flow": PairFlowTerm,
    "vgg": VGGTerm,
}


def term_parameters(name: str) -> dict[str, inspect.Parameter]:
    """The keyword parameters a loss term accepts (for config validation)."""
    if name not in TERMS:
        raise VfikitError(f"unknown loss {name!r}; choose from {sorted(TERMS)}")
    sig = inspect.signature(TERMS[name])
    return {
        k: p
        for k, p in sig.parameters.items()
        if k != "self" and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    }


class CompositeLoss(nn.Module):
    """Weighted sum of named terms. ``forward(inputs) -> (total, {name: value})`` (values detached)."""

    def __init__(self, terms: list[tuple[str, float, LossTerm]]) -> None:
        super().__init__()
        if not terms:
            raise VfikitError("the loss list is empty; give at least one {name, weight} entry")
        self.names = [n for n, _, _ in terms]
        if len(set(self.names)) != len(self.names):
            raise VfikitError(f"loss names repeat: {self.names}; give each term once")
        self.weights = [float(w) for _, w, _ in terms]
        self.terms = nn.ModuleList([m for _, _, m in terms])

    @property
    def needs_aux(self) -> bool:
        return any(m.needs_aux for m in self.terms)

    @property
    def needs_flip(self) -> bool:
        return any(m.needs_flip for m in self.terms)

    @property
    def needs_frame(self) -> bool:
        """False when every term reads only the model's motion at t (``aux``), not its frame."""
        return any(m.needs_frame for m in self.terms)

    def forward(self, inputs: LossInputs) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        total = None
        values: dict[str, torch.Tensor] = {}
        for name, weight, term in zip(self.names, self.weights, self.terms):
            value = term(inputs).float()
            values[name] = value.detach()
            total = weight * value if total is None else total + weight * value
        assert total is not None  # the constructor refuses an empty list
        return total, values


def build_loss(entries: list[dict[str, Any]]) -> CompositeLoss:
    """Build a ``CompositeLoss`` from ``[{"name": ..., "weight": ..., **params}, ...]``."""
    terms = []
    for i, entry in enumerate(entries):
        entry = dict(entry)
        if "name" not in entry:
            raise VfikitError(f"loss[{i}] has no 'name' (choose from {sorted(TERMS)})")
        name = entry.pop("name")
        weight = entry.pop("weight", 1.0)
        params = entry.pop("params", {}) | entry
        allowed = term_parameters(name)
        for key in params:
            if key not in allowed:
                known = sorted(allowed) or "none"
                raise VfikitError(f"loss[{i}] ({name}): unknown parameter {key!r}; allowed: {known}")
        terms.append((name, float(weight), TERMS[name](**params)))
    return CompositeLoss(terms)
