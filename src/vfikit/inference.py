"""``Interpolator``: run any registered model on frames of any size, at any time t, on any device.

What it adds to a bare model:

* input layouts (3, H, W) or (B, 3, H, W), float in [0, 1]; output in the same layout, dtype and
  device as the input, clamped to [0, 1]. Input is checked: NaN or infinite values, and values outside
  [-RANGE_TOLERANCE, 1 + RANGE_TOLERANCE] (1e-3, a quarter of an 8-bit level: what resampling or colour
  conversion rounding leaves; 0..255 floats are far outside), raise :class:`VfikitError`; values within the
  tolerance are clamped;
* frames with a side smaller than ``min_side`` (17 px) are replicate-padded first and cropped back
  exactly: the official AdaCoF/CDFI pipeline reflect-pads to a multiple of 32, which fails for sides
  of 16 px or less; every larger frame goes to the model unchanged (the model pads as it needs);
* ``t`` in [0, 1]: native for models with ``arbitrary_t``; otherwise recursive bisection: the
  midpoint of (frame0, frame1), then of the half holding t, and so on, up to ``max_depth`` levels.
  The time actually produced is ``reachable_t(t) = floor(t * 2**max_depth + 0.5) / 2**max_depth``,
  so ``|reachable_t(t) - t| <= 2**-(max_depth + 1)`` (1/128 for the default depth 6); reaching
  k / 2**d (k odd) costs d model calls, and ``interp_many`` shares the bisection tree between times.
  Intermediate frames are clamped to [0, 1] before they are fed back, as saved frames would be.
* device / precision: ``device="auto"`` (CUDA when available, else CPU), ``precision`` "fp32",
  "fp16" or "bf16" (autocast; the sampling ops themselves always run in fp32), ``torch.inference_mode``;
* tiling for frames that do not fit: overlapping tiles (``tile`` px, ``tile_overlap`` px of overlap)
  blended with linear feathering; the outer ``tile_overlap // 4`` px of each tile towards a
  neighbour are discarded (see ``feather``). A model whose output at a pixel depends only on inputs
  within ``tile_overlap // 4`` px gives exactly the untiled result; the kernel-estimation U-Nets see
  the whole frame, so their tiled output differs, mostly near the seams (docs/models.md gives
  measurements). ``tile="auto"`` runs whole
  frames and, on CUDA, retries with halved tiles after an out-of-memory error (on CPU it tiles frames
  larger than ``AUTO_CPU_PIXELS`` with 1024-px tiles).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import nullcontext
from fractions import Fraction

import torch
from torch import nn
from torch.nn import functional as F

from vfikit.errors import VfikitError, VfikitTypeError
from vfikit.models.base import require_trained
from vfikit.ops.warmup import choose_synthesis_heads
from vfikit.runtime import DEFAULT_PRECISION, check_frame, check_int, precision_dtype, resolve_device, resolve_precision

AUTO_CPU_PIXELS = 1920 * 1088
AUTO_CPU_TILE = 1024
MIN_AUTO_TILE = 128
RANGE_TOLERANCE = 1e-3  # accepted overshoot of [0, 1] in the input frames (then clamped)


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering [0, length) with at least ``overlap`` overlap."""
    if length <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return starts


def feather(length: int, start: int, total: int, overlap: int, device: torch.device) -> torch.Tensor:
    """1-D blending weights of one tile of ``length`` px at ``start`` in a frame of ``total`` px.

    On each side that has a neighbour, the first ``overlap // 4`` px get weight 0 (they lack context),
    then the weight ramps linearly to 1 over ``overlap - 2 * (overlap // 4)`` px. Two tiles overlapping
    by ``overlap`` px therefore have weights summing to 1 across the overlap, and every pixel with a
    non-zero weight lies at least ``overlap // 4`` px inside its tile.
    """
    w = torch.ones(length, device=device)
    if overlap <= 0:
        return w
    margin = overlap // 4
    span = overlap - 2 * margin
    d = torch.arange(length, device=device, dtype=torch.float32)
    ramp = ((d - margin + 0.5) / span).clamp(0, 1)
    if start > 0:
        w = torch.minimum(w, ramp)
    if start + length < total:
        w = torch.minimum(w, ramp.flip(0))
    return w


class Interpolator:
    """Frame interpolation with any model; see the module docstring.

    Args:
        model: a model (``VFIModel`` contract) or a registry name (``"cdfi"``, ``"cdfi.official"``).
        weights: with a name, a tag or a weights file (as ``create_model``).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``... The model is moved there.
        precision: ``"fp32"`` (default), ``"fp16"`` or ``"bf16"`` (autocast), or ``"auto"``: bf16 for models
            that declare ``cpu_bf16`` on a CPU where bfloat16 is measured faster, else fp32
            (``self.precision`` holds the result; see :func:`vfikit.runtime.resolve_precision`).
        tile: None (whole frames), an int (tile side in px, rounded down to a multiple of 32, >= 64)
            or ``"auto"``.
        tile_overlap: overlap of neighbouring tiles in px (at most half a tile; >= 4 recommended).
        max_depth: bisection depth for models without native t (bound 2**-(max_depth+1)).
        min_side: frames with a smaller side are replicate-padded to it first (17: the smallest side the
            official AdaCoF/CDFI reflect padding accepts).
        channels_last: run the convolutions in NHWC memory format (about 1.4x faster on CPU here; the
            convolutions sum in another order, so results differ by float rounding). None (default): on
            CPU, and on GPU with fp16/bf16, except for official-convention models, which stay NCHW: their
            truncating sampling turns a rounding difference into a different pixel (an offset of
            -0.99999964 becomes -1.0), so only NCHW computes exactly what the official code does.
        allow_untrained: accept a learned model whose trained weights were never loaded (its frames are
            garbage; for tests and research). By default such a model is refused with a
            :class:`VfikitError` (see :func:`vfikit.models.base.require_trained`).
        large_frames: ``(min_side, model)``: frames whose shorter side is at least ``min_side`` px run this
            second model instead (chosen on the whole frame, before tiling; same time handling and
            precision as ``model``). The video tool's default uses it (docs/benchmarks.md).
    """

    def __init__(self, model: nn.Module | str, *, weights: str | None = None, device: str | torch.device = "auto",
                 precision: str = DEFAULT_PRECISION, tile: int | str | None = None, tile_overlap: int = 64,
                 max_depth: int = 6,
                 min_side: int = 17, channels_last: bool | None = None, allow_untrained: bool = False,
                 large_frames: tuple[int, nn.Module] | None = None) -> None:
        if isinstance(model, str):
            from vfikit.hub import create_model

            model = create_model(model, weights=weights)
        elif weights is not None:
            raise VfikitError("weights= is only used with a model name; load the weights into the model instead")
        if not isinstance(model, nn.Module):
            raise VfikitTypeError(f"model must be an nn.Module or a registry name, got {type(model).__name__}")
        require_trained(model, allow_untrained=allow_untrained)
        check_int(max_depth, "max_depth", low=1, high=20)
        check_int(min_side, "min_side", low=1)
        check_int(tile_overlap, "tile_overlap", low=0)
        self.device = resolve_device(device)
        self.precision = precision = resolve_precision(precision, self.device, model)
        fused = self.device.type == "cpu" and getattr(model, "fused", False)
        choose_synthesis_heads(precision == "bf16" if fused else None)  # a background compile's dtype (if any)
        if channels_last is None:
            official = getattr(model, "convention", None) == "official"
            channels_last = (self.device.type == "cpu" or precision != "fp32") and not official
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = model.eval().to(self.device, memory_format=self.memory_format)
        self.arbitrary_t = bool(getattr(model, "arbitrary_t", False))
        self.large_frames = self._check_large_frames(large_frames, precision, allow_untrained)
        self.max_depth = max_depth
        self.min_side = min_side
        self.tile_overlap = tile_overlap
        self.tile = self._check_tile(tile)
        self._auto_tile: int | None = None  # learnt by tile="auto" after an out-of-memory error

    def _check_large_frames(self, large_frames, precision: str, allow_untrained: bool):
        """The checked ``(min_side, model)`` pair, the model on this device, or None."""
        if large_frames is None:
            return None
        if not isinstance(large_frames, tuple) or len(large_frames) != 2:
            raise VfikitTypeError("large_frames must be a (min_side, model) pair")
        side, large = large_frames
        check_int(side, "large_frames: min_side", low=1)
        if not isinstance(large, nn.Module):
            raise VfikitTypeError(f"large_frames: the model must be an nn.Module, got {type(large).__name__}")
        require_trained(large, allow_untrained=allow_untrained)
        if bool(getattr(large, "arbitrary_t", False)) != self.arbitrary_t:
            raise VfikitError("large_frames: the two models must handle t alike (both any t, or both midpoint only)")
        if resolve_precision(precision, self.device, large) != self.precision:
            raise VfikitError("large_frames: the two models must run in the same precision")
        return side, large.eval().to(self.device, memory_format=self.memory_format)

    def model_for(self, height: int, width: int) -> nn.Module:
        """The model that frames of this size run (``large_frames``' model from its size on)."""
        if self.large_frames is not None and min(height, width) >= self.large_frames[0]:
            return self.large_frames[1]
        return self.model

    @staticmethod
    def _check_tile(tile: int | str | None) -> int | str | None:
        if tile is None or tile == "auto":
            return tile
        return check_int(tile, "tile (None, 'auto' or pixels)", low=64) // 32 * 32

    # ------------------------------------------------------------------------------------------
    # time handling

    def reachable_t(self, t: float) -> float:
        """The time actually produced for a requested ``t`` (identity for models with native t)."""
        t = self._check_t(t)
        if self.arbitrary_t:
            return t
        scale = 1 << self.max_depth
        return math.floor(t * scale + 0.5) / scale

    @staticmethod
    def _check_t(t: float) -> float:
        if isinstance(t, torch.Tensor) and t.numel() == 1:
            t = float(t)
        if isinstance(t, bool) or not isinstance(t, (int, float)):
            raise VfikitTypeError(f"t must be a float in [0, 1], got {type(t).__name__}")
        if not 0.0 <= t <= 1.0:
            raise VfikitError(f"t must lie in [0, 1], got {t}")
        return float(t)

    # ------------------------------------------------------------------------------------------
    # public calls

    def __call__(self, frame0: torch.Tensor, frame1: torch.Tensor, t: float = 0.5) -> torch.Tensor:
        return self.interp(frame0, frame1, t)

    def interp(self, frame0: torch.Tensor, frame1: torch.Tensor, t: float = 0.5) -> torch.Tensor:
        """The frame at ``t`` (at ``reachable_t(t)`` for midpoint-only models); same layout as the input."""
        return self.interp_many(frame0, frame1, [t])[0]

    def frames(self, frames, **options):
        """Interpolate a stream of frames, yielding ``(timestamp, frame)`` pairs in order.

        ``frames``: (3, H, W) tensors or ``(seconds, tensor)`` pairs; ``options``: ``factor``, ``fps``,
        ``input_fps``, ``end``, ``scene_threshold``, ``dup_threshold``, ``batch_size`` (see
        :func:`vfikit.timeline.render.interpolate_frames`, which this calls with this interpolator).
        """
        from vfikit.timeline.render import interpolate_frames

        return interpolate_frames(self, frames, **options)

    def interp_many(self, frame0: torch.Tensor, frame1: torch.Tensor, ts: Sequence[float]) -> list[torch.Tensor]:
        """Frames at several times for one pair; bisection nodes are computed once and shared."""
        ts = [self._check_t(t) for t in ts]
        f0, f1, squeeze, out_device, out_dtype = self._prepare(frame0, frame1)
        results = []
        with torch.inference_mode():
            nodes: dict[Fraction, torch.Tensor] = {Fraction(0): f0, Fraction(1): f1}
            for t in ts:
                if self.arbitrary_t:
                    frame = f0 if t == 0 else f1 if t == 1 else self._predict(f0, f1, t)
                else:
                    frame = self._bisect(nodes, Fraction(self.reachable_t(t)))
                out = frame.to(device=out_device, dtype=out_dtype)
                results.append(out[0] if squeeze else out)
        return results

    # ------------------------------------------------------------------------------------------
    # internals

    def _prepare(self, frame0: torch.Tensor, frame1: torch.Tensor):
        for name, f in (("frame0", frame0), ("frame1", frame1)):
            check_frame(f, name, dims=(3, 4), range_tolerance=RANGE_TOLERANCE)
        if frame0.shape != frame1.shape:
            raise VfikitError(f"frame0 and frame1 differ in shape: {tuple(frame0.shape)} vs {tuple(frame1.shape)}")
        squeeze = frame0.dim() == 3
        out_device, out_dtype = frame0.device, frame0.dtype
        f0 = frame0[None] if squeeze else frame0
        f1 = frame1[None] if squeeze else frame1
        f0 = f0.to(self.device, torch.float32).clamp(0, 1)
        f1 = f1.to(self.device, torch.float32).clamp(0, 1)
        return f0, f1, squeeze, out_device, out_dtype

    def _bisect(self, nodes: dict[Fraction, torch.Tensor], target: Fraction) -> torch.Tensor:
        lo, hi = Fraction(0), Fraction(1)
        while target not in nodes:
            mid = (lo + hi) / 2
            if mid not in nodes:
                nodes[mid] = self._predict(nodes[lo], nodes[hi], None)
            if target < mid:
                hi = mid
            else:
                lo = mid
        return nodes[target]

    def _autocast(self):
        dtype = precision_dtype(self.precision)
        if dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    def _model(self, net: nn.Module, f0: torch.Tensor, f1: torch.Tensor, t: float | None) -> torch.Tensor:
        f0, f1 = f0.contiguous(memory_format=self.memory_format), f1.contiguous(memory_format=self.memory_format)
        with self._autocast():
            out = net(f0, f1) if t is None or t == 0.5 else net(f0, f1, t)
        if isinstance(out, tuple):
            out = out[0]
        if not bool(torch.isfinite(out).all()):  # clamp would pass NaN on: a black frame without a word
            raise VfikitError(f"the model produced non-finite output (NaN or infinite) for a {tuple(f0.shape)} "
                              "input: its weights are damaged or overflow at this precision (try precision='fp32')")
        return out.float().clamp(0, 1).contiguous()

    def _predict(self, f0: torch.Tensor, f1: torch.Tensor, t: float | None) -> torch.Tensor:
        """One model evaluation (with small-frame padding and tiling), clamped, float32, (B, 3, H, W)."""
        h, w = f0.shape[-2:]
        ph, pw = max(0, self.min_side - h), max(0, self.min_side - w)
        if ph or pw:
            f0 = F.pad(f0, (0, pw, 0, ph), mode="replicate")
            f1 = F.pad(f1, (0, pw, 0, ph), mode="replicate")
        out = self._tiled(self.model_for(h, w), f0, f1, t)
        return out[..., :h, :w]

    def _tile_size(self, h: int, w: int) -> int | None:
        if self.tile is None:
            return None
        if self.tile == "auto":
            if self._auto_tile is not None:
                return self._auto_tile
            if self.device.type == "cpu" and h * w > AUTO_CPU_PIXELS:
                return AUTO_CPU_TILE
            return None
        return int(self.tile)

    def _tiled(self, net: nn.Module, f0: torch.Tensor, f1: torch.Tensor, t: float | None) -> torch.Tensor:
        h, w = f0.shape[-2:]
        while True:
            tile = self._tile_size(h, w)
            try:
                if tile is None or (h <= tile and w <= tile):
                    return self._model(net, f0, f1, t)
                return self._run_tiles(net, f0, f1, t, tile)
            except torch.OutOfMemoryError:
                if self.tile != "auto":
                    raise
                current = tile or max(h, w)
                smaller = (current // 2) - (current // 2) % 32
                if smaller < MIN_AUTO_TILE:
                    raise
                self._auto_tile = smaller
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()

    def _run_tiles(self, net: nn.Module, f0: torch.Tensor, f1: torch.Tensor, t: float | None,
                   tile: int) -> torch.Tensor:
        b, _, h, w = f0.shape
        overlap = min(self.tile_overlap, tile // 2)
        out = torch.zeros(b, 3, h, w, device=f0.device)
        weight = torch.zeros(1, 1, h, w, device=f0.device)
        for y in tile_starts(h, tile, overlap):
            th = min(tile, h)
            wy = feather(th, y, h, overlap, f0.device)
            for x in tile_starts(w, tile, overlap):
                tw = min(tile, w)
                wx = feather(tw, x, w, overlap, f0.device)
                pred = self._model(net, f0[..., y:y + th, x:x + tw], f1[..., y:y + th, x:x + tw], t)
                wt = (wy[:, None] * wx[None, :])[None, None]
                out[..., y:y + th, x:x + tw] += pred * wt
                weight[..., y:y + th, x:x + tw] += wt
        return out / weight
