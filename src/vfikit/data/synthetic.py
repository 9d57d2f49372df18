"""Procedural training samples with exact ground truth at any time t.

A scene is a stack of textured layers: a background that moves with the camera (global affine:
translation, rotation and zoom about the frame centre) and several objects with their own
affine motion (translation, rotation, scale change), seen through the same camera with a
per-object parallax factor, drawn back to front with anti-aliased shapes so they occlude each
other. Textures are procedural (multi-scale noise, stripes and checkers, gradients, "dead
leaves" random shapes) or crops of user-given still images and video frames. Lighting changes
(per layer and global exposure), sensor noise and 8-bit quantisation are added.

Every frame is rendered from the scene's continuous description at its own time (motion
evaluated at t), so the target at t is exact, not interpolated from the inputs. Everything is
deterministic from ``(seed, index)``.

Coordinates are pixel indices (x to the right, y down); textures are sampled bilinearly with
``align_corners=True``, so a layer moved by an integer number of pixels reproduces its texture
exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vfikit.config import SyntheticConfig
from vfikit.data.triplet import Triplet
from vfikit.errors import VfikitError

TEXTURE_KINDS = ("noise", "stripes", "gradient", "shapes", "image")
SHAPE_KINDS = ("ellipse", "rectangle", "polygon", "blob", "noise_blob")
_EDGE_BAND = 4.0  # texture pixels of signed distance stored around object outlines


@dataclass
class Layer:
    """One textured layer. ``texture``: (4, Ht, Wt): RGB and a coverage channel
    (``_EDGE_BAND - signed distance`` clamped to [0, 2 * _EDGE_BAND], 0 outside; None for the
    opaque background). Motion at time t maps texture coordinates u to screen coordinates:
    ``screen = camera(t) @ (p(t) + R(theta(t)) * s(t) * (u - anchor))``."""

    texture: torch.Tensor
    anchor: tuple[float, float]
    p0: np.ndarray
    velocity: np.ndarray
    accel: np.ndarray
    theta0: float
    omega: float
    log_scale0: float
    zeta: float
    parallax: float
    gain0: np.ndarray
    gain1: np.ndarray
    opaque: bool = False


@dataclass
class Camera:
    """Global motion about the frame centre: translation ``velocity * t + accel * t (t - 1)``,
    rotation ``omega * t`` (radians), zoom ``exp(zeta * t)``; exposure gain/offset lerped in t."""

    velocity: np.ndarray
    accel: np.ndarray
    omega: float
    zeta: float
    gain0: float
    gain1: float


@dataclass
class Scene:
    """Layers seen by a camera. ``shutter`` > 0 adds motion blur: each frame is the mean of
    ``blur_samples`` renders spread over ``[t - shutter/2, t + shutter/2]`` (times in units of the
    frame0 -> frame1 interval), so a blurred target is still the exact frame at t."""

    size: tuple[int, int]
    camera: Camera
    layers: list[Layer]  # back to front; layers[0] is the opaque background
    noise_std: float
    noise_seed: int
    quantize: bool
    shutter: float = 0.0
    blur_samples: int = 5


# ----------------------------------------------------------------------------------------------
# geometry


def _affine(tx: float, ty: float, angle: float, scale: float) -> np.ndarray:
    c, s = math.cos(angle) * scale, math.sin(angle) * scale
    return np.array([[c, -s, tx], [s, c, ty], [0.0, 0.0, 1.0]])


def _translate(tx: float, ty: float) -> np.ndarray:
    return np.array([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]])


def camera_matrix(camera: Camera, size: tuple[int, int], t: float, parallax: float = 1.0) -> np.ndarray:
    """3x3 world -> screen map of the camera at time t (translation scaled by ``parallax``)."""
    h, w = size
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    shift = parallax * (camera.velocity * t + camera.accel * t * (t - 1.0))
    rot_zoom = _affine(0.0, 0.0, camera.omega * t, math.exp(camera.zeta * t))
    return _translate(cx + shift[0], cy + shift[1]) @ rot_zoom @ _translate(-cx, -cy)


def layer_matrix(layer: Layer, camera: Camera, size: tuple[int, int], t: float) -> np.ndarray:
    """3x3 texture -> screen map of ``layer`` at time t."""
    p = layer.p0 + layer.velocity * t + layer.accel * t * (t - 1.0)
    obj = _affine(p[0], p[1], layer.theta0 + layer.omega * t, math.exp(layer.log_scale0 + layer.zeta * t))
    return camera_matrix(camera, size, t, layer.parallax) @ obj @ _translate(-layer.anchor[0], -layer.anchor[1])


def layer_displacement(layer: Layer, camera: Camera, size: tuple[int, int]) -> float:
    """Screen displacement (px) of the layer's anchor between t = 0 and t = 1."""
    a = np.array([layer.anchor[0], layer.anchor[1], 1.0])
    d = layer_matrix(layer, camera, size, 1.0) @ a - layer_matrix(layer, camera, size, 0.0) @ a
    return float(np.hypot(d[0], d[1]))


# ----------------------------------------------------------------------------------------------
# rendering


def _base_grid(h: int, w: int, x0: int = 0, y0: int = 0) -> torch.Tensor:
    ys = torch.arange(y0, y0 + h, dtype=torch.float64)
    xs = torch.arange(x0, x0 + w, dtype=torch.float64)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy, torch.ones_like(gx)], dim=-1)  # (h, w, 3)


def _sample_layer(layer: Layer, mats_inv: list[np.ndarray], grid: torch.Tensor,
                  channels: slice = slice(None)) -> torch.Tensor:
    """Sample the layer's texture (its ``channels``) at screen points ``grid`` (h, w, 3) for each time.
    -> (n, C, h, w)."""
    texture = layer.texture[channels]
    _, ht, wt = texture.shape
    minv = torch.from_numpy(np.stack(mats_inv)[:, :2, :])  # (n, 2, 3)
    uv = torch.einsum("hwk,nck->nhwc", grid, minv)  # texture pixel coords (n, h, w, 2)
    norm = torch.tensor([2.0 / max(wt - 1, 1), 2.0 / max(ht - 1, 1)], dtype=torch.float64)
    uv = (uv * norm - 1.0).float()
    n, h, w, _ = uv.shape
    out = F.grid_sample(
        texture[None],
        uv.reshape(1, n * h, w, 2),
        mode="bilinear",
        padding_mode="reflection" if layer.opaque else "zeros",
        align_corners=True,
    )
    return out.reshape(texture.shape[0], n, h, w).transpose(0, 1)


def _screen_bbox(layer: Layer, mats: list[np.ndarray], size: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """Union over times of the layer's screen bounding box, clipped to the frame; None if off-screen."""
    _, ht, wt = layer.texture.shape
    corners = np.array([[0, 0, 1], [wt - 1, 0, 1], [0, ht - 1, 1], [wt - 1, ht - 1, 1]], dtype=np.float64).T
    pts = np.concatenate([(m @ corners)[:2] for m in mats], axis=1)
    h, w = size
    x0, y0 = max(math.floor(pts[0].min()) - 1, 0), max(math.floor(pts[1].min()) - 1, 0)
    x1, y1 = min(math.ceil(pts[0].max()) + 2, w), min(math.ceil(pts[1].max()) + 2, h)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def render(scene: Scene, times: list[float] | tuple[float, ...]) -> torch.Tensor:
    """Render the scene at each time. Returns (len(times), 3, H, W) float32 in [0, 1].

    Each frame depends only on its own time (and the scene): rendering a time alone gives the same
    image as rendering it together with others. Motion blur (``scene.shutter``) averages renders
    over the exposure; noise is then drawn per time from ``(noise_seed, t)``, and the frame clamped
    and quantised.
    """
    h, w = scene.size
    n = len(times)
    k = max(1, scene.blur_samples) if scene.shutter > 0 else 1
    exposures = [t + scene.shutter * (j / (k - 1) - 0.5) if k > 1 else t for t in times for j in range(k)]
    frames = _composite(scene, exposures)
    if k > 1:
        frames = frames.view(n, k, 3, h, w).mean(dim=1)
    if scene.noise_std > 0:
        for i, t in enumerate(times):
            g = torch.Generator().manual_seed(_time_seed(scene.noise_seed, t))
            frames[i] += scene.noise_std * torch.randn(frames[i].shape, generator=g)
    frames = frames.clamp(0.0, 1.0)
    if scene.quantize:
        frames = torch.round(frames * 255.0) / 255.0
    return frames


def _composite(scene: Scene, times: list[float]) -> torch.Tensor:
    """The noiseless, unclamped frames at ``times`` (one render each). (len(times), 3, H, W)."""
    h, w = scene.size
    n = len(times)
    full_grid = _base_grid(h, w)
    bg = scene.layers[0]
    mats = [layer_matrix(bg, scene.camera, scene.size, t) for t in times]
    frames = _sample_layer(bg, [np.linalg.inv(m) for m in mats], full_grid)[:, :3]
    frames = frames * _gains(bg, times)
    for layer in scene.layers[1:]:
        mats = [layer_matrix(layer, scene.camera, scene.size, t) for t in times]
        box = _screen_bbox(layer, mats, scene.size)
        if box is None:
            continue
        x0, y0, x1, y1 = box
        sampled = _sample_layer(layer, [np.linalg.inv(m) for m in mats], _base_grid(y1 - y0, x1 - x0, x0, y0))
        # coverage channel c = band - sd (texture px); screen px per texture px = scale s(t)
        scales = torch.tensor([_screen_scale(m) for m in mats], dtype=torch.float32).view(n, 1, 1, 1)
        alpha = _opacity(sampled[:, 3:4], scales)
        colour = sampled[:, :3] * _gains(layer, times)
        region = frames[:, :, y0:y1, x0:x1]
        frames[:, :, y0:y1, x0:x1] = region + alpha * (colour - region)
    cam = scene.camera
    exposure = torch.tensor([cam.gain0 + (cam.gain1 - cam.gain0) * t for t in times], dtype=torch.float32)
    return frames * exposure.view(n, 1, 1, 1)


# ----------------------------------------------------------------------------------------------
# exact motion at t

VISIBLE_WEIGHT = 0.99  # a pixel belongs to one layer when that layer makes at least this share of its colour


def _alphas(scene: Scene, t: float, points: torch.Tensor) -> list[torch.Tensor]:
    """Each layer's opacity at time t at screen ``points`` (h, w, 3) (homogeneous, float64): (h, w) float32
    each, back to front; the opaque background is 1 everywhere (the renderer's :func:`_opacity`)."""
    h, w = points.shape[:2]
    out = [torch.ones(h, w)]
    for layer in scene.layers[1:]:
        m = layer_matrix(layer, scene.camera, scene.size, t)
        coverage = _sample_layer(layer, [np.linalg.inv(m)], points, channels=slice(3, 4))[0, 0]
        out.append(_opacity(coverage, _screen_scale(m)))
    return out


def _layer_weights(alphas: list[torch.Tensor]) -> torch.Tensor:
    """(L, h, w): each layer's share of the composited colour (front layers cover the ones behind)."""
    remaining = torch.ones_like(alphas[0])
    weights = [torch.empty(0)] * len(alphas)
    for i in range(len(alphas) - 1, -1, -1):
        weights[i] = alphas[i] * remaining
        remaining = remaining * (1.0 - alphas[i])
    return torch.stack(weights)


def exact_motion(scene: Scene, t: float) -> torch.Tensor:
    """The exact backward flows of the frame at ``t`` and where they hold. Returns (6, H, W) float32:

    * 0-1: flow t->0 (x, y) in pixels: where each pixel of frame t was in frame 0;
    * 2-3: flow t->1 (x, y);
    * 4-5: visibility in frame 0 and frame 1 (1.0 or 0.0): the pixel's surface is seen there, inside the
      frame, by the same layer (not covered by another, not on a soft outline) as at t.

    Each pixel follows the layer that is visible at t (the front-most one carrying at least
    ``VISIBLE_WEIGHT`` of its colour); pixels on a soft outline at t are not visible in either frame.
    Flows are at the exposure's centre (motion blur is not modelled in the masks).
    """
    h, w = scene.size
    out = torch.zeros(6, h, w)
    owners = _owners(scene, t)
    for k, s in enumerate((0.0, 1.0)):
        flow, seen = _exact_towards(scene, t, s, owners)
        out[2 * k : 2 * k + 2], out[4 + k] = flow, seen
    return out


def _owners(scene: Scene, t: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The share of the front-most visible layer in each pixel's colour at t and that layer's index, (H, W) each."""
    h, w = scene.size
    return _layer_weights(_alphas(scene, t, _base_grid(h, w))).max(dim=0)


def _exact_towards(scene: Scene, t: float, s: float,
                   owners: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Flow t->s (2, H, W) (x, y) of every pixel of the frame at t, and whether it is seen at s (H, W) (1 or 0),
    as :func:`exact_motion` defines them (``owners``: :func:`_owners` at t, computed when not given). Each layer's
    pixels are mapped and tested on their own (the cost grows with the pixels times the layers, not times the
    layers squared)."""
    h, w = scene.size
    grid = _base_grid(h, w)
    share, owner = owners if owners is not None else _owners(scene, t)
    flow, seen = torch.zeros(2, h, w), torch.zeros(h, w)
    for i, layer in enumerate(scene.layers):
        mine = owner == i
        if not bool(mine.any()):
            continue
        step = torch.from_numpy(layer_matrix(layer, scene.camera, scene.size, s)
                                @ np.linalg.inv(layer_matrix(layer, scene.camera, scene.size, t)))  # screen t -> s
        here = grid[mine]  # (n, 3)
        points = torch.einsum("nk,ck->nc", here, step)[:, None]  # (n, 1, 3), last column stays 1
        x, y = points[:, 0, 0], points[:, 0, 1]
        inside = (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
        visible = _layer_weights(_alphas(scene, s, points))[i, :, 0] >= VISIBLE_WEIGHT
        flow[:, mine] = (points[:, 0, :2] - here[:, :2]).float().T
        seen[mine] = (inside & visible & (share[mine] >= VISIBLE_WEIGHT)).float()
    return flow, seen


def exact_pair_motion(scene: Scene) -> torch.Tensor:
    """The exact flows between the two inputs (times 0 and 1). Returns (6, H, W) float32: flow 0->1 (x, y: where
    each pixel of frame 0 is in frame 1), flow 1->0, and whether each pixel of frame 0 is seen in frame 1 and each
    pixel of frame 1 in frame 0 (:func:`exact_motion` at t = 0 and t = 1)."""
    (f01, seen01), (f10, seen10) = _exact_towards(scene, 0.0, 1.0), _exact_towards(scene, 1.0, 0.0)
    return torch.cat([f01, f10, seen01[None], seen10[None]])


def _opacity(coverage: torch.Tensor, scale: torch.Tensor | float) -> torch.Tensor:
    """A layer's opacity from its coverage channel (``_EDGE_BAND`` - signed distance, texture px) and its screen
    scale (screen px per texture px): a one-pixel anti-aliased edge on screen."""
    return (0.5 - (_EDGE_BAND - coverage) * scale).clamp(0.0, 1.0)


def _time_seed(seed: int, t: float) -> int:
    return (seed * 1_000_003 + round(float(t) * 1e9)) % (2**63 - 1)


def _screen_scale(m: np.ndarray) -> float:
    return float(math.sqrt(abs(np.linalg.det(m[:2, :2]))))


def _gains(layer: Layer, times: list[float] | tuple[float, ...]) -> torch.Tensor:
    g = np.stack([layer.gain0 + (layer.gain1 - layer.gain0) * t for t in times])
    return torch.from_numpy(g).float().view(len(times), 3, 1, 1)


# ----------------------------------------------------------------------------------------------
# textures (all (3, h, w) float32, roughly in [0, 1])


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    lum = rng.uniform(0.08, 0.92)
    chroma = rng.normal(0.0, 0.12, size=3)
    chroma -= chroma.mean()
    return np.clip(lum + chroma, 0.0, 1.0)


def _fractal_noise(h: int, w: int, channels: int, rng: np.random.Generator, g: torch.Generator) -> torch.Tensor:
    """Multi-octave noise built coarse to fine by repeated 2x bilinear upsampling. (channels, h, w), ~N(0, 1)."""
    beta = rng.uniform(0.0, 1.0)  # octave amplitude 2^(-beta*level): 0 = scale invariant, 1 = smooth
    coarsest = int(rng.integers(2, 6))
    levels = max(1, math.ceil(math.log2(max(h, w) / (coarsest + 1))) + 1)
    finest = int(rng.choice(3, p=[0.6, 0.3, 0.1]))  # sometimes skip the finest octaves (softer)
    ch, cw = (coarsest, max(2, round(coarsest * w / h))) if h >= w else (max(2, round(coarsest * h / w)), coarsest)
    x = torch.randn(1, channels, ch + 1, cw + 1, generator=g)
    for level in range(1, levels):
        x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        if level < levels - finest:
            amp = 2.0 ** (-beta * level)
            x = x + amp * torch.randn(x.shape, generator=g)
    x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)[0]
    x = x - x.mean(dim=(1, 2), keepdim=True)
    return x / (x.std(dim=(1, 2), keepdim=True) + 1e-6)


def _colourise(field_: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Map a (3, h, w) zero-mean field to RGB: strong luminance, weaker chroma, random mean colour."""
    base = torch.from_numpy(_random_colour(rng)).float().view(3, 1, 1)
    contrast = rng.uniform(0.05, 0.3)
    lum = field_[0:1] * contrast
    chroma = field_[1:3] * contrast * rng.uniform(0.0, 0.5)
    mix = torch.tensor([[1.0, 0.0], [-0.5, 0.866], [-0.5, -0.866]])
    return base + lum + torch.einsum("ck,khw->chw", mix, chroma)


def texture_noise(h: int, w: int, rng: np.random.Generator, g: torch.Generator) -> torch.Tensor:
    return _colourise(_fractal_noise(h, w, 3, rng, g), rng)


def texture_stripes(h: int, w: int, rng: np.random.Generator, g: torch.Generator) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    ang = rng.uniform(0, math.pi)
    period = math.exp(rng.uniform(math.log(3.0), math.log(48.0)))
    u = (xs * math.cos(ang) + ys * math.sin(ang)) * (2 * math.pi / period) + rng.uniform(0, 2 * math.pi)
    sharp = math.exp(rng.uniform(0.0, math.log(30.0)))
    wave = torch.tanh(sharp * torch.sin(u))
    if rng.random() < 0.4:  # checkerboard / grid
        period2 = period * math.exp(rng.uniform(-0.5, 0.5))
        v = (-xs * math.sin(ang) + ys * math.cos(ang)) * (2 * math.pi / period2)
        wave = wave * torch.tanh(sharp * torch.sin(v))
    c0 = torch.from_numpy(_random_colour(rng)).float().view(3, 1, 1)
    c1 = torch.from_numpy(_random_colour(rng)).float().view(3, 1, 1)
    out = c0 + (c1 - c0) * (0.5 + 0.5 * wave)
    return out + 0.03 * _fractal_noise(h, w, 1, rng, g)


def texture_gradient(h: int, w: int, rng: np.random.Generator, g: torch.Generator) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    if rng.random() < 0.5:
        ang = rng.uniform(0, 2 * math.pi)
        s = (xs * math.cos(ang) + ys * math.sin(ang)) * 0.5 + 0.5
    else:
        cx, cy = rng.uniform(-1, 1, size=2)
        s = torch.sqrt((xs - cx) ** 2 + (ys - cy) ** 2) / 2.0
    s = s.clamp(0, 1) ** rng.uniform(0.5, 2.0)
    c0 = torch.from_numpy(_random_colour(rng)).float().view(3, 1, 1)
    c1 = torch.from_numpy(_random_colour(rng)).float().view(3, 1, 1)
    return c0 + (c1 - c0) * s + 0.02 * _fractal_noise(h, w, 1, rng, g)


def _random_colours(rng: np.random.Generator, n: int) -> np.ndarray:
    lum = rng.uniform(0.08, 0.92, size=(n, 1))
    chroma = rng.normal(0.0, 0.12, size=(n, 3))
    return np.clip(lum + chroma - chroma.mean(axis=1, keepdims=True), 0.0, 1.0)


def texture_shapes(h: int, w: int, rng: np.random.Generator, g: torch.Generator) -> torch.Tensor:
    """"Dead leaves"-like: opaque discs, ellipses and rectangles with a power-law (r^-3) size distribution,
    painted large to small over a base colour until the area is covered about twice."""
    out = np.empty((h, w, 3), dtype=np.float32)
    out[:] = _random_colour(rng)
    side = max(h, w)
    rmin, rmax = max(1.5, 0.02 * side * rng.uniform(0.5, 2.0)), max(4.0, 0.4 * side)
    mean_area = 2 * math.pi * rmin**2 * math.log(rmax / rmin)
    count = int(min(300, max(10, 2.0 * h * w / mean_area)))
    u = rng.random(count)
    radii = np.sort(1.0 / np.sqrt(u / rmax**2 + (1 - u) / rmin**2))[::-1]  # inverse CDF of r^-3
    params = rng.random((count, 5))
    colours = _random_colours(rng, count).astype(np.float32)
    for r, (pu, pv, kind, aspect, ang), colour in zip(radii, params, colours):
        cx, cy = pu * (w + 2 * r) - r, pv * (h + 2 * r) - r
        x0, x1 = max(int(cx - r) - 1, 0), min(int(cx + r) + 2, w)
        y0, y1 = max(int(cy - r) - 1, 0), min(int(cy + r) + 2, h)
        if x1 <= x0 or y1 <= y0:
            continue
        ys = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(cy)
        xs = np.arange(x0, x1, dtype=np.float32)[None, :] - np.float32(cx)
        aspect = np.float32(0.4 + 0.6 * aspect)
        ca, sa = np.float32(math.cos(ang * math.pi)), np.float32(math.sin(ang * math.pi))
        qx, qy = xs * ca + ys * sa, ys * ca - xs * sa
        if kind < 0.6:
            sd = np.sqrt(qx * qx + (qy / aspect) ** 2) - np.float32(r)
        else:
            sd = np.maximum(np.abs(qx) - np.float32(r), np.abs(qy) - np.float32(r) * aspect)
        alpha = np.clip(np.float32(0.5) - sd, 0, 1)[..., None]
        region = out[y0:y1, x0:x1]
        region += alpha * (colour - region)
    return torch.from_numpy(out).permute(2, 0, 1).contiguous()


class TexturePool:
    """Still images and video frames held in memory as uint8 (3, H, W) tensors, for texture crops."""

    def __init__(self, sources: list[str | Path], max_frames: int = 64, max_side: int = 640) -> None:
        from vfikit.data.sequences import decoded_clip, discover_clips

        self.frames: list[torch.Tensor] = []
        clips = discover_clips([Path(s) for s in sources])
        if not clips:
            raise VfikitError(f"texture_sources {list(map(str, sources))} hold no images or videos")
        per_clip = max(1, max_frames // len(clips))
        for clip in clips:
            frames = decoded_clip(clip, max_side=max_side)
            for i in np.unique(np.linspace(0, len(frames) - 1, min(per_clip, len(frames))).round().astype(int)):
                self.frames.append(torch.from_numpy(frames[i].copy()).permute(2, 0, 1).contiguous())
        self.frames = self.frames[:max_frames]

    def __len__(self) -> int:
        return len(self.frames)

    def crop(self, h: int, w: int, rng: np.random.Generator) -> torch.Tensor:
        """A random crop of a random frame, rescaled (0.5x-1.5x) to (3, h, w) float."""
        frame = self.frames[int(rng.integers(len(self.frames)))]
        _, fh, fw = frame.shape
        scale = math.exp(rng.uniform(math.log(0.5), math.log(1.5)))
        scale = max(scale, h / fh, w / fw)  # the crop must fit inside the frame
        ch, cw = min(fh, math.ceil(h / scale)), min(fw, math.ceil(w / scale))
        y0, x0 = int(rng.integers(0, fh - ch + 1)), int(rng.integers(0, fw - cw + 1))
        patch = frame[:, y0 : y0 + ch, x0 : x0 + cw].float()[None] / 255.0
        patch = F.interpolate(patch, size=(h, w), mode="bilinear", align_corners=False, antialias=scale < 1)[0]
        if rng.random() < 0.5:
            patch = patch.flip(-1)
        return patch


# ----------------------------------------------------------------------------------------------
# object outlines: signed distance (texture px, negative inside) on the texture grid


def _shape_sdf(kind: str, r: float, size: int, rng: np.random.Generator, g: torch.Generator) -> torch.Tensor:
    c = (size - 1) / 2.0
    ys, xs = torch.meshgrid(
        torch.arange(size, dtype=torch.float32) - c, torch.arange(size, dtype=torch.float32) - c, indexing="ij"
    )
    if kind == "ellipse":
        a, b = r, r * rng.uniform(0.35, 1.0)
        k = torch.sqrt((xs / a) ** 2 + (ys / b) ** 2)
        grad = torch.sqrt((xs / a**2) ** 2 + (ys / b**2) ** 2)
        return (k - 1) * k / (grad + 1e-6)
    if kind == "rectangle":
        bx, by = r * 0.8, r * 0.8 * rng.uniform(0.3, 1.0)
        rad = rng.uniform(0.0, 0.3) * by
        qx, qy = xs.abs() - bx + rad, ys.abs() - by + rad
        outside = torch.sqrt(qx.clamp(min=0) ** 2 + qy.clamp(min=0) ** 2)
        return outside + torch.maximum(qx, qy).clamp(max=0) - rad
    if kind == "polygon":
        m = int(rng.integers(3, 9))
        angles = np.sort(rng.uniform(0, 2 * math.pi, size=m))
        pts = np.stack([np.cos(angles), np.sin(angles)], axis=1) * r
        sd = torch.full_like(xs, -1e9)
        for i in range(m):
            p, q = pts[i], pts[(i + 1) % m]
            nx, ny = q[1] - p[1], -(q[0] - p[0])  # outward normal for counter-clockwise order
            norm = math.hypot(nx, ny)
            if norm < 1e-6:
                continue
            nx, ny = nx / norm, ny / norm
            sd = torch.maximum(sd, (xs - p[0]) * nx + (ys - p[1]) * ny)
        return sd
    if kind == "blob":
        phi = torch.atan2(ys, xs)
        rho = torch.sqrt(xs**2 + ys**2)
        radius = torch.ones_like(phi)
        dradius = torch.zeros_like(phi)
        for k in range(2, 6):
            amp, ph = rng.uniform(0, 0.25 / k), rng.uniform(0, 2 * math.pi)
            radius = radius + amp * torch.cos(k * phi + ph)
            dradius = dradius - amp * k * torch.sin(k * phi + ph)
        radius, dradius = radius * r * 0.8, dradius * r * 0.8
        return (rho - radius) / torch.sqrt(1 + (dradius / (rho + 1e-3)) ** 2)
    # noise_blob: a thresholded smooth noise field inside a disc (irregular outline, maybe holes)
    noise = _fractal_noise(size, size, 1, rng, g)[0]
    noise = F.avg_pool2d(noise[None, None], 5, stride=1, padding=2, count_include_pad=False)[0, 0]
    gy, gx = torch.gradient(noise)
    sd_noise = (rng.uniform(-0.8, 0.2) - noise) / (torch.sqrt(gx**2 + gy**2) + 1e-3)
    return torch.maximum(sd_noise.clamp(-_EDGE_BAND, _EDGE_BAND), torch.sqrt(xs**2 + ys**2) - r)


# ----------------------------------------------------------------------------------------------
# the generator


class SyntheticGenerator:
    """Draws scenes from ``SyntheticConfig``; ``scene(seed)`` then ``render(scene, times)``."""

    def __init__(self, config: SyntheticConfig | None = None) -> None:
        self.config = config or SyntheticConfig()
        cfg = self.config
        if len(cfg.size) != 2 or min(cfg.size) < 8:
            raise VfikitError(f"synthetic size must be [H, W] with sides >= 8, got {cfg.size}")
        if cfg.max_translation < 0:
            raise VfikitError(f"synthetic max_translation must be >= 0, got {cfg.max_translation}")
        if len(cfg.objects) != 2 or cfg.objects[0] < 0 or cfg.objects[1] < cfg.objects[0]:
            raise VfikitError(f"synthetic objects must be [min, max] with 0 <= min <= max, got {cfg.objects}")
        if len(cfg.object_size) != 2 or not 0 < cfg.object_size[0] <= cfg.object_size[1]:
            raise VfikitError(f"synthetic object_size must be [min, max] fractions, got {cfg.object_size}")
        unknown = set(cfg.texture_weights) - set(TEXTURE_KINDS)
        if unknown:
            raise VfikitError(f"synthetic texture_weights: unknown kinds {sorted(unknown)}; use {TEXTURE_KINDS}")
        self.pool = (
            TexturePool(cfg.texture_sources, cfg.texture_pool, cfg.texture_max_side) if cfg.texture_sources else None
        )
        kinds = [k for k in TEXTURE_KINDS if cfg.texture_weights.get(k, 0) > 0 and (k != "image" or self.pool)]
        if not kinds:
            raise VfikitError(f"synthetic texture_weights {cfg.texture_weights} leave no usable texture kind")
        weights = np.array([cfg.texture_weights[k] for k in kinds], dtype=np.float64)
        self._kinds, self._kind_p = kinds, weights / weights.sum()
        if cfg.t_range is not None:
            if len(cfg.t_range) != 2 or not 0 <= cfg.t_range[0] <= cfg.t_range[1] <= 1:
                raise VfikitError(f"synthetic t_range must be [lo, hi] within [0, 1], got {cfg.t_range}")
        else:
            ts = cfg.t if isinstance(cfg.t, list) else [cfg.t]
            if not ts or not all(0 <= float(x) <= 1 for x in ts):
                raise VfikitError(f"synthetic t must be in [0, 1], got {cfg.t}")

    @property
    def fixed_t(self) -> float | None:
        """The target time when it never varies, else None."""
        cfg = self.config
        if cfg.t_range is not None:
            return cfg.t_range[0] if cfg.t_range[0] == cfg.t_range[1] else None
        ts = cfg.t if isinstance(cfg.t, list) else [cfg.t]
        return float(ts[0]) if len(set(ts)) == 1 else None

    def _magnitude(self, rng: np.random.Generator, limit: float) -> float:
        return limit * rng.random() ** self.config.motion_gamma

    def _texture(self, kind: str, h: int, w: int, rng: np.random.Generator, g: torch.Generator) -> torch.Tensor:
        if kind == "image":
            assert self.pool is not None  # image is only a usable kind with a pool
            tex = self.pool.crop(h, w, rng)
        else:
            tex = {"noise": texture_noise, "stripes": texture_stripes, "gradient": texture_gradient,
                   "shapes": texture_shapes}[kind](h, w, rng, g)
        if rng.random() < self.config.shading:  # soft shading
            tex = tex * (1.0 + rng.uniform(0.05, 0.3) * _fractal_noise(h, w, 1, rng, g).clamp(-2, 2) / 2)
        return tex.clamp(0.0, 1.0)

    def _gain_pair(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        cfg = self.config
        if rng.random() >= cfg.lighting_prob or cfg.lighting <= 0:
            return np.ones(3), np.ones(3)
        change = rng.uniform(-cfg.lighting, cfg.lighting) + rng.normal(0, cfg.lighting / 4, size=3)
        g0 = np.ones(3)
        return g0, g0 * (1.0 + change)

    def scene(self, seed: int) -> Scene:
        """The scene for ``seed`` (deterministic)."""
        cfg = self.config
        rng = np.random.default_rng(seed)
        g = torch.Generator().manual_seed(int(rng.integers(2**62)))
        h, w = int(cfg.size[0]), int(cfg.size[1])
        deg = math.pi / 180.0

        # camera
        if rng.random() < cfg.static_camera:
            cam_v, cam_omega, cam_zeta = np.zeros(2), 0.0, 0.0
        else:
            ang = rng.uniform(0, 2 * math.pi)
            cam_v = self._magnitude(rng, cfg.max_translation) * np.array([math.cos(ang), math.sin(ang)])
            cam_omega = rng.uniform(-1, 1) * cfg.max_camera_rotation * deg * rng.random()
            cam_zeta = math.log1p(rng.uniform(-1, 1) * cfg.max_camera_zoom * rng.random())
        cam_a = cfg.acceleration * np.linalg.norm(cam_v) * rng.uniform(-1, 1, size=2)
        exposure = 1.0 + (rng.uniform(-cfg.lighting, cfg.lighting) if rng.random() < cfg.lighting_prob / 2 else 0.0)
        camera = Camera(cam_v, cam_a, cam_omega, cam_zeta, 1.0, exposure)

        # background: covers the frame at every time (margin for translation, rotation and zoom)
        margin = math.ceil(cfg.max_translation * 1.1 + 0.06 * max(h, w)) + 2
        bh, bw = h + 2 * margin, w + 2 * margin
        bg_tex = self._texture(str(rng.choice(self._kinds, p=self._kind_p)), bh, bw, rng, g)
        g0, g1 = self._gain_pair(rng)
        layers = [
            Layer(
                texture=bg_tex,
                anchor=((bw - 1) / 2.0, (bh - 1) / 2.0),
                p0=np.array([(w - 1) / 2.0, (h - 1) / 2.0]),
                velocity=np.zeros(2),
                accel=np.zeros(2),
                theta0=0.0,
                omega=0.0,
                log_scale0=0.0,
                zeta=0.0,
                parallax=1.0,
                gain0=g0,
                gain1=g1,
                opaque=True,
            )
        ]

        # objects, drawn back to front: nearer ones (larger parallax) last
        count = int(rng.integers(cfg.objects[0], cfg.objects[1] + 1))
        parallaxes = np.sort(rng.uniform(0.8, 1.6, size=count))
        lo, hi = cfg.object_size
        for parallax in parallaxes:
            radius_px = math.exp(rng.uniform(math.log(lo), math.log(hi))) * min(h, w)
            log_scale0 = rng.uniform(-0.25, 0.25)
            r_tex = max(radius_px / math.exp(log_scale0), 3.0)
            size = math.ceil(2 * (r_tex + _EDGE_BAND + 1)) + 1
            kind = str(rng.choice(SHAPE_KINDS))
            sdf = _shape_sdf(kind, r_tex, size, rng, g)
            coverage = (_EDGE_BAND - sdf).clamp(0.0, 2 * _EDGE_BAND)
            coverage[[0, -1], :] = 0.0  # transparent border, so zero padding outside is consistent
            coverage[:, [0, -1]] = 0.0
            colour = self._texture(str(rng.choice(self._kinds, p=self._kind_p)), size, size, rng, g)
            # own motion chosen so that the object's screen displacement is at most max_translation
            ang = rng.uniform(0, 2 * math.pi)
            screen_v = self._magnitude(rng, cfg.max_translation) * np.array([math.cos(ang), math.sin(ang)])
            velocity = screen_v - parallax * cam_v
            g0, g1 = self._gain_pair(rng)
            layers.append(
                Layer(
                    texture=torch.cat([colour, coverage[None]], dim=0).contiguous(),
                    anchor=((size - 1) / 2.0, (size - 1) / 2.0),
                    p0=np.array([rng.uniform(-0.1, 1.1) * w, rng.uniform(-0.1, 1.1) * h]),
                    velocity=velocity,
                    accel=cfg.acceleration * np.linalg.norm(screen_v) * rng.uniform(-1, 1, size=2),
                    theta0=rng.uniform(0, 2 * math.pi),
                    omega=rng.uniform(-1, 1) * cfg.max_rotation * deg * rng.random(),
                    log_scale0=log_scale0,
                    zeta=math.log1p(rng.uniform(-1, 1) * cfg.max_zoom * rng.random()),
                    parallax=float(parallax),
                    gain0=g0,
                    gain1=g1,
                )
            )
        noise = cfg.noise * rng.random() if cfg.noise > 0 else 0.0
        shutter = cfg.max_shutter * rng.random() if rng.random() < cfg.motion_blur else 0.0
        return Scene((h, w), camera, layers, noise, int(rng.integers(2**62)), cfg.quantize, shutter)

    def draw_t(self, rng: np.random.Generator) -> float:
        cfg = self.config
        if cfg.t_range is not None:
            return float(rng.uniform(cfg.t_range[0], cfg.t_range[1]))
        ts = cfg.t if isinstance(cfg.t, list) else [cfg.t]
        return float(ts[int(rng.integers(len(ts)))])

    def sample(self, seed: int) -> Triplet:
        """One training sample: frames at 0 and 1, the exact frame at t (drawn per the config) and, with
        ``exact_motion`` in the config, its exact motion at t and between the inputs (:func:`exact_motion`,
        :func:`exact_pair_motion`; ``Triplet.motion``'s 12 channels)."""
        t = self.draw_t(np.random.default_rng([seed, 1]))
        scene = self.scene(seed)
        frames = render(scene, (0.0, t, 1.0))
        motion = torch.cat([exact_motion(scene, t), exact_pair_motion(scene)]) if self.config.exact_motion else None
        return Triplet(frames[0], frames[2], frames[1], t=t, key=f"synthetic/{seed}", motion=motion)


class SyntheticDataset(torch.utils.data.Dataset):
    """Map-style view of a generator: item i is the sample of seed ``(base_seed, i)`` mixed into one int.

    ``length`` is nominal (scenes are generated on demand, never stored).
    """

    endless = True

    def __init__(self, config: SyntheticConfig | None = None, seed: int = 0, length: int = 1_000_000) -> None:
        self.generator = SyntheticGenerator(config)
        self.seed = int(seed)
        self.length = int(length)

    def __len__(self) -> int:
        return self.length

    def seed_of(self, index: int) -> int:
        return int(np.random.SeedSequence([self.seed, int(index)]).generate_state(1, dtype=np.uint64)[0] >> 1)

    def __getitem__(self, index: int) -> Triplet:
        if not 0 <= index < self.length:
            raise IndexError(index)
        return self.generator.sample(self.seed_of(index))
