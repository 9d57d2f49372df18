"""A learned motion estimator at time t that corrects a guide's flows, coarse to fine.

The guided models take their motion at t from OpenCV DIS (``flow_dis``: flows both ways, splatted to t).
Where DIS is wrong at t (large or non-linear motion, occlusions) the kernel network cannot repair it:
their teacher probe gained 5.3 dB on real clips with flows from the true frame. :class:`MotionRefiner`
learns that correction. It starts from the guide's backward flows ``flow_t0``, ``flow_t1`` (x, y, pixels)
and its blend logit, and refines them at 1/8, 1/4 and 1/2 of the frame size. Each block sees

* both frames and both frames backward-warped by the current estimate (at its resolution),
* the current flows (in units of 16 px), the blend logit and t,
* with ``correlation`` r > 0, a local matching cost of the two warped frames: for every displacement d with
  |dx|, |dy| <= r (level pixels), the mean absolute difference of warp0 at p + d and warp1 at p - d, the
  symmetric change of the two flows that a wrong motion at t needs ((2r+1)^2 channels; no parameters),

works one step coarser inside (a stride-2 convolution, a few 3x3 convolutions) and predicts residual
flows t->0, t->1 and a residual blend logit. The residuals add up across levels and are upsampled to
the frame size and added to the guide's full-resolution fields. The last layer of every block starts at
zero, so an untrained refiner returns the guide's fields exactly. Any t: t is an input channel.

Cost at 640x480 (padded to 640x512) with the default widths: 1.26 GMACs, 235,887 parameters.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from vfikit.errors import VfikitError
from vfikit.ops import backward_warp
from vfikit.runtime import check_int

FLOW_UNIT = 16.0  # flows enter the blocks in units of 16 px
IN_CHANNELS = 18  # frame0, frame1, warp0, warp1 (RGB each), flow_t0, flow_t1 (x, y each), blend logit, t
OUT_CHANNELS = 5  # residual flow_t0, flow_t1 (x, y each, in pixels of the block's level), residual blend logit
DEFAULT_LEVELS = (8, 4, 2)
DEFAULT_WIDTHS = (64, 48, 32)


def matching_cost(warp0: torch.Tensor, warp1: torch.Tensor, radius: int, symmetric: bool = True,
                  product: bool = False) -> torch.Tensor:
    """(B, (2r+1)^2, h, w): for each displacement d = (dx, dy), |dx|, |dy| <= r, row-major from (-r, -r), the mean
    over channels of |warp0(p + d) - warp1(p - d)| (``symmetric``) or of |warp0(p) - warp1(p + d)| (borders
    replicated). ``product``: the mean of the product instead of the absolute difference (a correlation, for
    learned features). Inputs (B, C, h, w)."""
    pad = 2 * radius
    a = F.pad(warp0, (pad, pad, pad, pad), mode="replicate")
    b = F.pad(warp1, (pad, pad, pad, pad), mode="replicate")
    h, w = warp0.shape[-2:]
    costs = []
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if symmetric:
                shifted0 = a[..., pad + dy : pad + dy + h, pad + dx : pad + dx + w]
                shifted1 = b[..., pad - dy : pad - dy + h, pad - dx : pad - dx + w]
            else:
                shifted0 = warp0
                shifted1 = b[..., pad + dy : pad + dy + h, pad + dx : pad + dx + w]
            cost = shifted0 * shifted1 if product else (shifted0 - shifted1).abs()
            costs.append(cost.mean(1, keepdim=True))
    return torch.cat(costs, 1)


class FeatureEncoder(nn.Module):
    """Learned features of a frame at each of ``levels`` (powers of two): (B, 3, H, W) -> {level: (B, channels,
    H / level, W / level)}. One stage per halving (a stride-2 3x3 convolution, then another 3x3 convolution from
    the finest level on); half the channels before the finest level. H and W must divide by the coarsest level."""

    def __init__(self, levels: Sequence[int], channels: int) -> None:
        super().__init__()
        if any(level & (level - 1) or level < 2 for level in levels):
            raise VfikitError(f"learned features need levels that are powers of two from 2 up, got {list(levels)}")
        self.keep = set(levels)
        stages, c_in, factor = [], 3, 1
        while factor < max(levels):
            factor *= 2
            c_out = channels if factor >= min(levels) else max(channels // 2, 8)
            layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.LeakyReLU(0.1)]
            if factor >= min(levels):
                layers += [nn.Conv2d(c_out, c_out, 3, padding=1), nn.LeakyReLU(0.1)]
            stages.append(nn.Sequential(*layers))
            c_in = c_out
        self.stages = nn.ModuleList(stages)

    def forward(self, frames: torch.Tensor) -> dict[int, torch.Tensor]:
        out, x, factor = {}, frames - 0.5, 1
        for stage in self.stages:
            x, factor = stage(x), factor * 2
            if factor in self.keep:
                out[factor] = x
        return out


class _Block(nn.Module):
    """One level: (B, in_channels, h, w) -> (B, out_channels, h, w) residuals, computed at (h/2, w/2) and
    upsampled by a transposed convolution whose weights start at zero."""

    def __init__(self, width: int, depth: int, in_channels: int, out_channels: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 3, stride=2, padding=1), nn.LeakyReLU(0.1)]
        for _ in range(depth):
            layers += [nn.Conv2d(width, width, 3, padding=1), nn.LeakyReLU(0.1)]
        self.body = nn.Sequential(*layers)
        self.out = nn.ConvTranspose2d(width, out_channels, 4, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x))


class _CoarseToFine(nn.Module):
    """Blocks that refine fields coarse to fine (the shared part of the two refiners).

    ``levels``: downsampling factor of each block, coarse to fine (each a multiple of the next, the last one
    at least 1); ``widths``: channels of each block; ``depth``: 3x3 convolutions per block after its first;
    ``correlation``: the radius r of the matching cost each block also sees (0: none).
    """

    def __init__(self, levels: Sequence[int], widths: Sequence[int], depth: int, correlation: int,
                 in_channels: int, out_channels: int) -> None:
        super().__init__()
        levels, widths = [int(v) for v in levels], [int(v) for v in widths]
        if not levels or len(levels) != len(widths) or min(levels) < 1 or min(widths) < 1:
            raise VfikitError(f"motion levels and widths must be equally long lists of positive integers, "
                              f"got {levels} and {widths}")
        if any(a % b or a <= b for a, b in itertools.pairwise(levels)):
            raise VfikitError(f"motion levels must run coarse to fine, each a multiple of the next, got {levels}")
        check_int(depth, "motion depth", low=0)
        check_int(correlation, "motion correlation", low=0, high=8)
        self.levels, self.widths, self.depth, self.correlation = levels, widths, depth, correlation
        extra = (2 * correlation + 1) ** 2 if correlation else 0
        self.blocks = nn.ModuleList(_Block(w, depth, in_channels + extra, out_channels) for w in widths)
        self.reset()

    @property
    def settings(self) -> dict[str, object]:
        """The constructor's arguments (what a model records in ``model_args``)."""
        settings: dict[str, object] = {"levels": list(self.levels), "widths": list(self.widths), "depth": self.depth}
        if self.correlation:
            settings["correlation"] = self.correlation
        return settings

    @torch.no_grad()
    def reset(self) -> None:
        """Zero every block's last layer: the refiner then returns the fields it is given unchanged."""
        for block in self.blocks:
            block.out.weight.zero_()
            block.out.bias.zero_()


class MotionRefiner(_CoarseToFine):
    """Residual flows and blend logit at t on top of a guide's. See the module docstring.

    Settings as :class:`_CoarseToFine`. Frames must be divisible by ``2 * levels[0]`` (the guided models pad to
    multiples of 32).
    """

    def __init__(self, levels: Sequence[int] = DEFAULT_LEVELS, widths: Sequence[int] = DEFAULT_WIDTHS,
                 depth: int = 3, correlation: int = 0) -> None:
        super().__init__(levels, widths, depth, correlation, IN_CHANNELS, OUT_CHANNELS)

    def forward(self, frame0: torch.Tensor, frame1: torch.Tensor, flow_t0: torch.Tensor, flow_t1: torch.Tensor,
                logit: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Frames (B, 3, H, W) (RGB in [0, 1]); the guide's flows (B, 2, H, W) (x, y, pixels) and blend logit of
        frame0 (B, 1, H, W); ``t`` (B,). Returns the refined flow_t0, flow_t1 and logit, same shapes."""
        h, w = frame0.shape[-2:]
        unit = 2 * self.levels[0]
        if h % unit or w % unit:
            raise VfikitError(f"the motion refiner needs frames divisible by {unit}, got {w}x{h} (pad them)")
        guide = torch.cat([flow_t0, flow_t1, logit], 1)
        residual = None
        for level, block in zip(self.levels, self.blocks):
            size = (h // level, w // level)
            if residual is None:
                residual = guide.new_zeros(guide.shape[0], OUT_CHANNELS, *size)
            else:
                residual = F.interpolate(residual, size=size, mode="bilinear", align_corners=False)
            here = (F.avg_pool2d(guide, level) if level > 1 else guide) + residual
            residual = residual + self._step(block, frame0, frame1, here, t, level)
        if residual.shape[-2:] != (h, w):
            residual = F.interpolate(residual, size=(h, w), mode="bilinear", align_corners=False)
        fields = guide + residual
        return fields[:, 0:2], fields[:, 2:4], fields[:, 4:5]

    def _step(self, block: _Block, frame0: torch.Tensor, frame1: torch.Tensor, fields: torch.Tensor,
              t: torch.Tensor, level: int) -> torch.Tensor:
        """One block's residuals (B, 5, h, w), flows in full-resolution pixels, at the level's size (h, w)."""
        x0 = F.avg_pool2d(frame0, level) if level > 1 else frame0
        x1 = F.avg_pool2d(frame1, level) if level > 1 else frame1
        flow0, flow1, logit = fields[:, 0:2], fields[:, 2:4], fields[:, 4:5]
        warp0, warp1 = backward_warp(x0, flow0 / level), backward_warp(x1, flow1 / level)
        time = t.view(-1, 1, 1, 1).to(x0.dtype).expand_as(logit)
        parts = [x0 - 0.5, x1 - 0.5, warp0 - 0.5, warp1 - 0.5, flow0 / FLOW_UNIT, flow1 / FLOW_UNIT, logit, time]
        if self.correlation:
            parts.append(matching_cost(warp0, warp1, self.correlation))
        inp = torch.cat(parts, 1)
        out = block(inp)
        return torch.cat([out[:, :4] * level, out[:, 4:]], 1)


PAIR_IN_CHANNELS = 8  # the frame, the other frame warped by the current flow (RGB each), the flow (x, y)
PAIR_LEVELS = (16, 8, 4)
PAIR_WIDTHS = (64, 48, 32)


class PairFlowRefiner(_CoarseToFine):
    """Residual flows between the two inputs (0->1 and 1->0, one set of weights) on top of a guide's DIS flows.

    The guide splats these flows to t; fed the exact flows between the inputs, that splatting puts the motion at t
    within 0.1 px on the synthetic validation scenes where DIS's flows leave 1.5 px, so this is where a learned
    correction pays (docs/models.md). Unlike a correction at t, matching between the inputs is unambiguous: a
    fast object that DIS missed is found at its place in the other frame. Each block sees the frame, the other
    frame backward-warped by the current flow, the flow (in units of 16 px) and, with ``correlation`` r, the
    matching cost |frame(p) - warped(p + d)| for |dx|, |dy| <= r level pixels; it predicts the flow's residual.
    Settings as :class:`_CoarseToFine`; the last layers start at zero (an untrained refiner returns DIS's flows).
    ``select`` (an odd window, 0: off) keeps, per pixel, whichever of DIS's and the refined flow matches the
    other frame better over that window (:meth:`choose`): the refiner finds what DIS missed, but blurs DIS's
    sub-pixel flows where DIS was right. It applies in eval mode only: in training it would pass no gradient where
    DIS's flow wins, which at the zero start is everywhere. Any frame size (padded inside, replicate).
    """

    def __init__(self, levels: Sequence[int] = PAIR_LEVELS, widths: Sequence[int] = PAIR_WIDTHS, depth: int = 3,
                 correlation: int = 3, select: int = 0, features: int = 0) -> None:
        check_int(features, "flow_refiner features", low=0, high=128)
        super().__init__(levels, widths, depth, correlation, PAIR_IN_CHANNELS + features, 2)
        check_int(select, "flow_refiner select", low=0, high=31)
        if select and select % 2 == 0:
            raise VfikitError(f"flow_refiner select must be 0 or an odd window size, got {select}")
        self.select, self.features = select, features
        self.encoder = FeatureEncoder(self.levels, features) if features else None

    @property
    def settings(self) -> dict[str, object]:
        """The constructor's arguments (what a model records in ``model_args``)."""
        settings = super().settings
        if self.select:
            settings["select"] = self.select
        if self.features:
            settings["features"] = self.features
        return settings

    @staticmethod
    def choose(frame: torch.Tensor, other: torch.Tensor, guide: torch.Tensor, refined: torch.Tensor,
               window: int) -> torch.Tensor:
        """Per pixel, the flow (B, 2, H, W) of ``guide`` and ``refined`` whose warp of ``other`` matches ``frame``
        better, by the mean absolute colour difference over a ``window`` x ``window`` box: the refined flow
        where it finds the other frame's content and DIS did not, DIS's sub-pixel flow where it already did."""

        def mismatch(flow: torch.Tensor) -> torch.Tensor:
            error = (frame - backward_warp(other, flow)).abs().mean(1, keepdim=True)
            return F.avg_pool2d(error, window, 1, window // 2, count_include_pad=False)

        return torch.where(mismatch(refined) < mismatch(guide), refined, guide)

    def forward(self, frame0: torch.Tensor, frame1: torch.Tensor, flow01: torch.Tensor,
                flow10: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Frames (B, 3, H, W) (RGB in [0, 1]) and the guide's flows 0->1, 1->0 (B, 2, H, W) (x, y, pixels;
        ``frame0(p) ~ frame1(p + flow01(p))``). Returns the refined flows, same shapes.

        The frames and flows are pooled to the finest level once (both directions in one batch) and padded
        there (replicate), the coarser levels pooled from it: no full-size copy but the result."""
        h, w = frame0.shape[-2:]
        finest = self.levels[-1]
        features = self._features(frame0, frame1) if self.encoder is not None else {}
        pyramid = {finest: self._finest(frame0, frame1, flow01, flow10)}
        for level in reversed(self.levels[:-1]):  # coarser levels from the finer ones
            finer = min(k for k in pyramid if k < level)
            pyramid[level] = F.avg_pool2d(pyramid[finer], level // finer)
        residual, n = None, frame0.shape[0]
        for level, block in zip(self.levels, self.blocks):
            x = pyramid[level]
            xa, xb, flows = x[:, 0:3], x[:, 3:6], x[:, 6:8]
            if residual is None:
                residual = flows.new_zeros(flows.shape)
            else:
                residual = F.interpolate(residual, size=flows.shape[-2:], mode="bilinear", align_corners=False)
            here = flows + residual
            warped = backward_warp(xb, here / level)
            parts = [xa - 0.5, warped - 0.5, here / FLOW_UNIT]
            if level in features:  # learned features: the frame's, and the correlation with the other's warped
                fa = features[level]
                parts.append(fa)
                if self.correlation:
                    fb = backward_warp(torch.cat([fa[n:], fa[:n]]), here / level)
                    parts.append(matching_cost(fa, fb, self.correlation, symmetric=False, product=True))
            elif self.correlation:
                parts.append(matching_cost(xa, warped, self.correlation, symmetric=False))
            residual = residual + block(torch.cat(parts, 1)) * level
        size = (residual.shape[-2] * finest, residual.shape[-1] * finest)
        residual = F.interpolate(residual, size=size, mode="bilinear", align_corners=False) if finest > 1 else residual
        out01, out10 = flow01 + residual[:n, :, :h, :w], flow10 + residual[n:, :, :h, :w]
        if self.select and not self.training:  # in training the refiner learns everywhere (see the class doc)
            out01 = self.choose(frame0, frame1, flow01, out01, self.select)
            out10 = self.choose(frame1, frame0, flow10, out10, self.select)
        return out01, out10

    def _features(self, frame0: torch.Tensor, frame1: torch.Tensor) -> dict[int, torch.Tensor]:
        """{level: (2B, features, h, w)}: the learned features of frame0 then frame1 at every level, the frames
        padded (replicate) to the sizes :meth:`_finest` gives."""
        unit = 2 * self.levels[0]
        h, w = frame0.shape[-2:]
        frames = torch.cat([frame0, frame1])
        if h % unit or w % unit:
            frames = F.pad(frames, (0, (-w) % unit, 0, (-h) % unit), mode="replicate")
        return self.encoder(frames)

    def _finest(self, frame0: torch.Tensor, frame1: torch.Tensor, flow01: torch.Tensor,
                flow10: torch.Tensor) -> torch.Tensor:
        """(2B, 8, h, w): frame, other frame and flow of both directions at the finest level, padded (replicate)
        so that every level divides it and the coarsest block's stride-2 convolution halves it exactly."""
        finest, unit = self.levels[-1], 2 * self.levels[0]
        h, w = frame0.shape[-2:]
        ends = ((-h) % finest, (-w) % finest)
        rows = []
        for a, b, flow in ((frame0, frame1, flow01), (frame1, frame0, flow10)):
            x = torch.cat([a, b, flow], 1)
            if any(ends):
                x = F.pad(x, (0, ends[1], 0, ends[0]), mode="replicate")
            rows.append(F.avg_pool2d(x, finest) if finest > 1 else x)
        x = torch.cat(rows)
        more = unit // finest
        pad = (0, (-x.shape[-1]) % more, 0, (-x.shape[-2]) % more)
        return F.pad(x, pad, mode="replicate") if any(pad) else x
