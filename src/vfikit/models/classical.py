"""Weight-free baselines registered as models: ``overlay`` and ``flow_dis``.

* ``overlay``: the time-weighted blend ``(1 - t) * frame0 + t * frame1`` (at t = 0.5 the average).
  The floor of every table.
* ``flow_dis``: classical flow-based interpolation. OpenCV's DIS optical flow (Kroeger et al. 2016)
  both ways on the grayscale frames; forward-backward consistency gives a soft occlusion map of
  each frame; both flows are splatted forward to time t (softmax splatting, weighted by
  photometric and flow consistency, so that where two surfaces land on one pixel the consistent
  one wins) which yields the backward flows t->0 and t->1 and the visibility of each frame at t;
  holes are filled by normalised convolution at growing scales; both frames are backward-warped
  (bilinear, border replicate) and blended with the time weights times the visibilities.
  Runs in numpy/OpenCV on the CPU whatever the input device (results are moved back).

Neither has parameters; both take any t in [0, 1] (``arbitrary_t = True``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from vfikit.errors import VfikitError, VfikitTypeError
from vfikit.models.base import VFIModel
from vfikit.models.blocks import check_frames
from vfikit.models.catalog import register_model
from vfikit.ops.splat import SPLAT_BACKENDS, consistency, splat_motion


def _time_tensor(t: float | torch.Tensor | None, frame: torch.Tensor) -> torch.Tensor:
    """t as a (B, 1, 1, 1) tensor on the frame's device/dtype; checks the range [0, 1]."""
    b = frame.shape[0]
    if t is None:
        t = 0.5
    if isinstance(t, torch.Tensor):
        if t.dim() > 1 or (t.dim() == 1 and t.shape[0] not in (1, b)):
            raise VfikitError(f"t must be a float or a (B,) tensor with B={b}, got shape {tuple(t.shape)}")
        tt = t.detach().to(frame.device, frame.dtype).reshape(-1)
    elif isinstance(t, (int, float)) and not isinstance(t, bool):
        tt = torch.tensor([float(t)], device=frame.device, dtype=frame.dtype)
    else:
        raise VfikitTypeError(f"t must be a float or a tensor, got {type(t).__name__}")
    if not torch.isfinite(tt).all() or (tt < 0).any() or (tt > 1).any():
        raise VfikitError(f"t must lie in [0, 1], got {tt.tolist()}")
    return tt.expand(b).reshape(b, 1, 1, 1)


class Overlay(VFIModel):
    """``frame_t = (1 - t) * frame0 + t * frame1``."""

    arbitrary_t = True

    def forward(self, frame0: torch.Tensor, frame1: torch.Tensor, t=None, return_aux: bool = False):
        check_frames(frame0, frame1)
        tt = _time_tensor(t, frame0)
        out = frame0 * (1 - tt) + frame1 * tt
        return (out, {}) if return_aux else out


# ---------------------------------------------------------------------------------------------
# flow_dis

_PRESETS = {"ultrafast": 0, "fast": 1, "medium": 2}  # cv2.DISOPTICAL_FLOW_PRESET_*


@dataclass(frozen=True)
class FlowDISConfig:
    """Settings of ``flow_dis`` (defaults chosen on the cdfi_img_seq clip, never on Middlebury).

    preset: DIS preset (ultrafast / fast / medium). variational_iterations, finest_scale: DIS
    refinement iterations and finest pyramid level (0 = full resolution; None keeps the preset's).
    init_scale: k > 0 first runs the same DIS on the frames downscaled by 2**k; that flow, upsampled,
    starts the full-size DIS (which then descends its whole pyramid again from it: a second,
    better-started coarse-to-fine pass); None: one pass.
    fb_alpha, fb_beta: forward-backward test
    ``|F01 + F10(x + F01)|^2 <= fb_alpha * (|F01|^2 + |F10(x + F01)|^2) + fb_beta`` (Sundaram et
    al. 2010), softened. splat_beta: sharpness of the softmax splatting weights
    ``exp(-splat_beta * error)`` (error: mean absolute colour difference in [0, 1] plus the
    occlusion score). occlusion_blur: std (pixels) of the blur softening the visibility maps.
    flow_at_t: ``"splat"`` (forward splatting, above) or ``"linear"`` (the quadratic
    approximation of Super SloMo, ``F_t0 = -(1-t) t F01 + t^2 F10``, for comparison).
    occlusion: False blends with the time weights only (ablation). occlusion_strength: how far an
    occluded frame's weight is lowered (1: to zero; 0.5: to half). splat_backend: ``"numba"``
    (compiled, the default) or ``"numpy"`` (the reference twin; :func:`vfikit.ops.splat.splat`).
    """

    preset: str = "medium"
    variational_iterations: int | None = None
    finest_scale: int | None = 0
    init_scale: int | None = 2
    fb_alpha: float = 0.01
    fb_beta: float = 0.5
    splat_beta: float = 20.0
    occlusion_blur: float = 1.0
    flow_at_t: str = "splat"
    occlusion: bool = True
    occlusion_strength: float = 0.5
    splat_backend: str = "numba"
    large_side: int | None = 720
    large_variational_iterations: int | None = 0


def dis_flow_estimator(cfg: FlowDISConfig):
    """OpenCV's DIS optical flow estimator with ``cfg``'s preset and refinements."""
    import cv2

    dis = cv2.DISOpticalFlow_create(_PRESETS[cfg.preset])
    if cfg.variational_iterations is not None:
        dis.setVariationalRefinementIterations(int(cfg.variational_iterations))
    if cfg.finest_scale is not None:
        dis.setFinestScale(int(cfg.finest_scale))
    return dis


def gray_u8(img: np.ndarray) -> np.ndarray:
    """(H, W, 3) float [0, 1] -> (H, W) uint8 luma (BT.601 weights, round half up)."""
    g = img[..., 0] * 0.299 + img[..., 1] * 0.587 + img[..., 2] * 0.114
    return np.clip(g * 255.0 + 0.5, 0, 255).astype(np.uint8)


_dis, _gray_u8 = dis_flow_estimator, gray_u8  # the names FlowDIS uses


def dis_flow(cfg: FlowDISConfig, g0: np.ndarray, g1: np.ndarray) -> np.ndarray:
    """DIS flow (H, W, 2) from grey frame ``g0`` to ``g1``, started from a pass at 1/2**``init_scale`` of the
    size where the frames allow it (DIS needs 12 px; the small pass is kept to at least 16). Each call makes
    its own estimators, so calls may run on several threads at once; the small pass has one of its own too,
    because an OpenCV DIS object that has computed a flow at one size returns garbage (flows off by hundreds
    of pixels) at another."""
    full, k = _dis(_full_size_settings(cfg, g0.shape)), cfg.init_scale
    if not k or min(g0.shape) >> k < 16:
        return full.calc(g0, g1, None)
    return full.calc(g0, g1, _coarse_flow(_dis(cfg), g0, g1, k))


def _full_size_settings(cfg: FlowDISConfig, shape: tuple[int, ...]) -> FlowDISConfig:
    """``cfg`` with the large-frame refinement setting where the frame's shorter side reaches ``large_side``."""
    if cfg.large_side is None or min(shape[:2]) < cfg.large_side:
        return cfg
    return replace(cfg, variational_iterations=cfg.large_variational_iterations)


def _coarse_flow(dis, g0: np.ndarray, g1: np.ndarray, k: int) -> np.ndarray:
    """DIS flow (H, W, 2) of (H, W) grey frames computed at 1/2**k of their size, upsampled (bilinear) and
    scaled back: the start of a full-size DIS pass (``calc`` refines a flow of the right size and type)."""
    import cv2

    h, w = g0.shape
    small = (max(1, w >> k), max(1, h >> k))
    s0 = cv2.resize(g0, small, interpolation=cv2.INTER_AREA)
    s1 = cv2.resize(g1, small, interpolation=cv2.INTER_AREA)
    flow = cv2.resize(dis.calc(s0, s1, None), (w, h), interpolation=cv2.INTER_LINEAR)
    flow[..., 0] *= w / small[0]
    flow[..., 1] *= h / small[1]
    return flow


def _remap(img: np.ndarray, fx: np.ndarray, fy: np.ndarray, *more: np.ndarray):
    """Bilinear backward warp: out(p) = img(p + f(p)), border replicate. With ``more`` images, every one is
    warped with the same sampling map (built once) and a list is returned."""
    import cv2

    h, w = fx.shape
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    mx, my = gx + fx, gy + fy
    out = [cv2.remap(a, mx, my, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
           for a in (img, *more)]
    return out if more else out[0]


def _fill_holes(out: np.ndarray, known: np.ndarray) -> np.ndarray:
    """(H, W, C) splatted means with the (H, W) mask of pixels something landed on -> the same with
    every hole (``~known``) set to a normalised-convolution average of its surroundings, at growing
    scales (3, 9, 27, ... px) until every hole is filled.
    """
    import cv2

    h, w, _ = out.shape
    if known.all() or not known.any():
        return out  # no holes; or nothing was splatted at all (cannot happen for non-empty frames)
    mask = known.astype(np.float32)
    k = 3
    filled = out.copy()
    todo = ~known
    while todo.any():
        num = cv2.blur(out * mask[..., None], (k, k), borderType=cv2.BORDER_REPLICATE)
        den = cv2.blur(mask, (k, k), borderType=cv2.BORDER_REPLICATE)
        if num.ndim == 2:
            num = num[..., None]
        got = todo & (den > 1e-6)
        filled[got] = num[got] / den[got][..., None]
        todo &= ~got
        k = k * 3
        if k > 3 * max(h, w):  # pragma: no cover - a known pixel always exists, so this ends earlier
            break
    return filled


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal shape, dtype, device and values."""
    return a.shape == b.shape and a.dtype == b.dtype and a.device == b.device and torch.equal(a, b)


class FlowDIS(VFIModel):
    """Classical interpolation with OpenCV DIS flow, occlusion-aware splatting and blending."""

    arbitrary_t = True
    uncounted_work = "OpenCV DIS flow, splatting and warping (numpy/OpenCV, not torch)"

    def __init__(self, config: FlowDISConfig | None = None, flow: dict | None = None, **overrides):
        """``config`` with ``overrides`` (FlowDISConfig fields); ``flow``: the same settings as one dict, the
        argument the flow-guided models take for their guide, so ``create_model(name, flow=...)`` sets the
        guide of either kind of model."""
        super().__init__()
        config = config or FlowDISConfig()
        overrides = {**(flow or {}), **overrides}
        if overrides:
            unknown = set(overrides) - set(FlowDISConfig.__dataclass_fields__)
            if unknown:
                raise VfikitError(f"flow_dis: unknown settings {sorted(unknown)}")
            config = FlowDISConfig(**{**config.__dict__, **overrides})
        if config.flow_at_t not in ("splat", "linear"):
            raise VfikitError(f"flow_dis: flow_at_t must be 'splat' or 'linear', got {config.flow_at_t!r}")
        if not 0.0 <= config.occlusion_strength <= 1.0:
            raise VfikitError(f"flow_dis: occlusion_strength must lie in [0, 1], got {config.occlusion_strength}")
        for name in ("fb_alpha", "fb_beta", "splat_beta", "occlusion_blur"):
            if getattr(config, name) < 0:
                raise VfikitError(f"flow_dis: {name} must be >= 0, got {getattr(config, name)}")
        if config.splat_backend not in SPLAT_BACKENDS:
            raise VfikitError(f"flow_dis: splat_backend must be one of {', '.join(SPLAT_BACKENDS)}, "
                              f"got {config.splat_backend!r}")
        if config.init_scale is not None and (isinstance(config.init_scale, bool)
                                              or config.init_scale not in (1, 2, 3)):
            raise VfikitError(f"flow_dis: init_scale must be None, 1, 2 or 3, got {config.init_scale!r}")
        if config.large_side is not None and (isinstance(config.large_side, bool) or int(config.large_side) < 1):
            raise VfikitError(f"flow_dis: large_side must be None or a positive size, got {config.large_side!r}")
        for name in ("variational_iterations", "large_variational_iterations"):
            if getattr(config, name) is not None and int(getattr(config, name)) < 0:
                raise VfikitError(f"flow_dis: {name} must be None or >= 0, got {getattr(config, name)!r}")
        if config.preset not in _PRESETS:
            raise VfikitError(f"flow_dis: unknown DIS preset {config.preset!r}; choose one of {', '.join(_PRESETS)}")
        self.config = config
        self.keep_last_pair = True  # :meth:`flows` in eval mode reuses the last pair's flows (False: never)
        self._last_pair: tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]] | None = None

    def forward(self, frame0: torch.Tensor, frame1: torch.Tensor, t=None, return_aux: bool = False):
        check_frames(frame0, frame1)
        def both(a: np.ndarray, c: np.ndarray, tb: float) -> dict[str, np.ndarray]:
            frame, maps = self.interpolate_numpy(a, c, tb)
            return {"frame": frame, **maps}

        maps = self._per_sample(both, frame0, frame1, t)
        frame_t = maps.pop("frame")
        return (frame_t, maps) if return_aux else frame_t

    def motion(self, frame0: torch.Tensor, frame1: torch.Tensor, t=None) -> dict[str, torch.Tensor]:
        """The motion at t without the frame: ``{"flow_t0", "flow_t1"}`` (B, 2, H, W) (x, y) and
        ``"visibility"`` (B, 2, H, W), as ``forward``'s aux: :meth:`flows` then :meth:`motion_from_flows`, the path the
        guided models take."""
        pair = self.flows(frame0, frame1)  # one path: DIS's flows, then the splatting of given flows
        return self.motion_from_flows(frame0, frame1, pair["flow01"], pair["flow10"], t)

    def flows(self, frame0: torch.Tensor, frame1: torch.Tensor) -> dict[str, torch.Tensor]:
        """DIS's flows between the frames: ``{"flow01", "flow10"}`` (B, 2, H, W) (x, y, pixels;
        ``frame0(p) ~ frame1(p + flow01(p))``), what :meth:`motion_from_flows` takes.

        In eval mode the last pair's flows are kept: frames equal to the last call's (compared by value, so a
        caller's new tensors of the same frames count, and a changed frame never does) get copies of them
        without running DIS again. Several times t of one pair (4x, slow motion) then cost one DIS pass."""
        check_frames(frame0, frame1)
        keep = self.keep_last_pair and not self.training
        memo = self._last_pair if keep else None
        if memo is not None and all(_same(a, b) for a, b in zip(memo[:2], (frame0, frame1))):
            return {k: v.clone() for k, v in memo[2].items()}
        out = self._per_sample(lambda a, c, _t: dict(zip(("flow01", "flow10"), self._flows(a, c)[2:])),
                               frame0, frame1, None)
        self._last_pair = None
        if keep:
            self._last_pair = (frame0.detach().clone(), frame1.detach().clone(), {k: v.clone() for k, v in out.items()})
        return out

    def motion_from_flows(self, frame0: torch.Tensor, frame1: torch.Tensor, flow01: torch.Tensor,
                          flow10: torch.Tensor, t=None) -> dict[str, torch.Tensor]:
        """:meth:`motion` from given flows between the frames (B, 2, H, W) (e.g. DIS's, refined) instead of
        DIS's own: the splatting to t, hole filling and visibility are the same."""
        check_frames(frame0, frame1)

        def fn(a: np.ndarray, c: np.ndarray, tb: float, f01: np.ndarray, f10: np.ndarray) -> dict[str, np.ndarray]:
            a, c = (np.ascontiguousarray(x, dtype=np.float32) for x in (a, c))
            return self.motion_numpy(a, c, np.ascontiguousarray(f01), np.ascontiguousarray(f10), tb)

        return self._per_sample(fn, frame0, frame1, t, flow01, flow10)

    @staticmethod
    def _per_sample(fn, frame0: torch.Tensor, frame1: torch.Tensor, t, *extra: torch.Tensor) -> dict[str, torch.Tensor]:
        """Run ``fn((H, W, 3) img0, img1, t, *extra as (H, W, C)) -> dict of (H, W, C) maps`` per batch item
        (numpy, CPU); the maps stacked as (B, C, H, W) on the frames' device and dtype."""
        tt = _time_tensor(t, frame0).flatten().tolist()
        items = []

        def hwc(x: torch.Tensor, b: int) -> np.ndarray:
            return x[b].detach().float().cpu().permute(1, 2, 0).numpy()

        with torch.no_grad():
            for b in range(frame0.shape[0]):
                items.append(fn(hwc(frame0, b), hwc(frame1, b), tt[b], *(hwc(x, b) for x in extra)))
        return {k: torch.stack([torch.from_numpy(m[k]).permute(2, 0, 1) for m in items]).to(frame0.device,
                                                                                             frame0.dtype)
                for k in items[0]}

    def _flows(self, img0: np.ndarray, img1: np.ndarray):
        """DIS flows 0->1 and 1->0 ((H, W, 2), x then y) of (H, W, 3) frames, and the float32 frames.

        The two directions run at once, on two threads (OpenCV releases the GIL; its own threads do not
        fill two cores for the small pass): 10% faster than one after the other, the same flows."""
        from concurrent.futures import ThreadPoolExecutor

        img0 = np.ascontiguousarray(img0, dtype=np.float32)
        img1 = np.ascontiguousarray(img1, dtype=np.float32)
        g0, g1 = _gray_u8(img0), _gray_u8(img1)
        with ThreadPoolExecutor(1) as pool:
            backward = pool.submit(dis_flow, self.config, g1, g0)
            return img0, img1, dis_flow(self.config, g0, g1), backward.result()

    def interpolate_numpy(self, img0: np.ndarray, img1: np.ndarray, t: float):
        """(H, W, 3) float32 RGB frames -> ((H, W, 3) frame at t, :meth:`motion_numpy`'s maps)."""
        return self.synthesize(*self._flows(img0, img1), t)

    def synthesize(self, img0: np.ndarray, img1: np.ndarray, f01: np.ndarray, f10: np.ndarray, t: float):
        """The frame at ``t`` from (H, W, 3) frames and their (H, W, 2) flows (x, y) 0->1 and 1->0.

        ``img0(p) ~ img1(p + f01(p))``. Returns the frame and :meth:`motion_numpy`'s maps.
        """
        maps = self.motion_numpy(img0, img1, f01, f10, t)
        ft0, ft1, vis = maps["flow_t0"], maps["flow_t1"], maps["visibility"]
        warp0 = _remap(img0, ft0[..., 0], ft0[..., 1])
        warp1 = _remap(img1, ft1[..., 0], ft1[..., 1])
        w0 = (1 - t) * vis[..., 0:1]
        w1 = t * vis[..., 1:2]
        den = w0 + w1
        blend = (w0 * warp0 + w1 * warp1) / np.maximum(den, 1e-6)
        plain = (1 - t) * warp0 + t * warp1  # where neither frame claims the pixel
        return np.where(den > 1e-3, blend, plain).astype(np.float32), maps

    def motion_numpy(self, img0: np.ndarray, img1: np.ndarray, f01: np.ndarray, f10: np.ndarray,
                     t: float) -> dict[str, np.ndarray]:
        """Backward flows t->0 and t->1 (H, W, 2) and the visibility of each frame at t (H, W, 2)."""
        import cv2

        cfg = self.config
        h, w, _ = img0.shape
        # occ: a frame0 pixel not visible in frame1 (forward-backward test) and vice versa;
        # err: photometric consistency of each pixel with its match in the other frame
        back01, warp1 = _remap(f10, f01[..., 0], f01[..., 1], img1)  # frame1's flow and colour at x + F01
        back10, warp0 = _remap(f01, f10[..., 0], f10[..., 1], img0)
        occ0, err0 = consistency(f01, back01, img0, warp1, cfg.fb_alpha, cfg.fb_beta, cfg.splat_backend)
        occ1, err1 = consistency(f10, back10, img1, warp0, cfg.fb_alpha, cfg.fb_beta, cfg.splat_backend)

        # frames nearer in time are more reliable sources for their side (see vfikit.ops.splat.splat_motion)
        splatted, known = splat_motion(f01, f10, occ0, occ1, err0, err1, t, cfg.splat_beta,
                                       backend=cfg.splat_backend)
        fields = _fill_holes(splatted, known)
        ft0, ft1, vis = fields[..., 0:2], fields[..., 2:4], np.clip(fields[..., 4:6], 0.0, 1.0)
        if cfg.flow_at_t == "linear":
            ft0 = -(1 - t) * t * f01 + t * t * f10
            ft1 = (1 - t) * (1 - t) * f01 - t * (1 - t) * f10
            vis = np.stack([1 - _remap(occ1, ft1[..., 0], ft1[..., 1]), 1 - _remap(occ0, ft0[..., 0], ft0[..., 1])], 2)
        if not cfg.occlusion:
            vis = np.ones_like(vis)
        elif cfg.occlusion_strength != 1.0:
            vis = 1.0 - cfg.occlusion_strength * (1.0 - vis)
        if cfg.occlusion_blur > 0:
            vis = cv2.GaussianBlur(vis, (0, 0), cfg.occlusion_blur, borderType=cv2.BORDER_REPLICATE)
        # content whose source lies outside a frame is not visible in it
        gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        for k, f in ((0, ft0), (1, ft1)):
            sx, sy = gx + f[..., 0], gy + f[..., 1]
            inside = (sx >= -0.5) & (sx <= w - 0.5) & (sy >= -0.5) & (sy <= h - 0.5)
            vis[..., k] *= inside
        return {"flow_t0": ft0, "flow_t1": ft1, "visibility": vis.astype(np.float32)}


@register_model("overlay", family="classical", params=0,
                description="time-weighted average of the two frames (no weights)",
                arbitrary_t=True)
def overlay() -> Overlay:
    """The blend baseline."""
    return Overlay()


@register_model("flow_dis", family="classical", params=0,
                description="OpenCV DIS flow both ways, occlusion-aware splatting to t, backward warp and blend",
                arbitrary_t=True)
def flow_dis(**settings) -> FlowDIS:
    """The classical flow baseline; keyword settings override :class:`FlowDISConfig` fields."""
    return FlowDIS(**settings)
