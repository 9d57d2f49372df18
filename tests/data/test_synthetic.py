"""The procedural generator: determinism, exact ground truth, motion coverage, textures from images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from vfikit.data.synthetic import (
    Camera,
    Layer,
    Scene,
    SyntheticConfig,
    SyntheticDataset,
    SyntheticGenerator,
    layer_displacement,
    render,
)
from vfikit.errors import VfikitError

SMALL = {"size": [40, 48], "objects": [0, 2], "max_translation": 6.0}


def _still_camera() -> Camera:
    return Camera(np.zeros(2), np.zeros(2), 0.0, 0.0, 1.0, 1.0)


def _background(texture: torch.Tensor, velocity, size, gain1=1.0) -> Layer:
    _, th, tw = texture.shape
    h, w = size
    anchor, centre = ((tw - 1) / 2, (th - 1) / 2), np.array([(w - 1) / 2, (h - 1) / 2])
    return Layer(texture, anchor, centre, np.asarray(velocity, float), np.zeros(2), 0.0, 0.0, 0.0, 0.0, 1.0,
                 np.ones(3), np.full(3, gain1), opaque=True)


def test_same_seed_same_sample_and_different_seeds_differ():
    a = SyntheticDataset(SyntheticConfig(**SMALL), seed=3)
    b = SyntheticDataset(SyntheticConfig(**SMALL), seed=3)
    s1, s2 = a[5], b[5]
    for x, y in ((s1.frame0, s2.frame0), (s1.frame1, s2.frame1), (s1.target, s2.target)):
        assert torch.equal(x, y)
    assert not torch.equal(a[6].frame0, s1.frame0)
    assert not torch.equal(SyntheticDataset(SyntheticConfig(**SMALL), seed=4)[5].frame0, s1.frame0)
    assert s1.frame0.shape == (3, 40, 48) and s1.frame0.dtype == torch.float32
    assert float(s1.frame0.min()) >= 0.0 and float(s1.frame0.max()) <= 1.0
    # 8-bit quantised by default
    assert torch.equal(torch.round(s1.target * 255) / 255, s1.target)


def test_integer_translation_at_t_gives_the_shifted_texture():
    size = (24, 30)
    tex = torch.rand(3, 40, 46, generator=torch.Generator().manual_seed(0))
    scene = Scene(size, _still_camera(), [_background(tex, (4.0, -6.0), size)], 0.0, 0, False)
    f0, fh, f1 = render(scene, (0.0, 0.5, 1.0))
    # at t = 0.5 the texture moved by (2, -3): frame_t(y, x) = frame_0(y + 3, x - 2)
    torch.testing.assert_close(fh[:, :-3, 2:], f0[:, 3:, :-2], atol=1e-5, rtol=0)
    torch.testing.assert_close(f1[:, :-6, 4:], f0[:, 6:, :-4], atol=1e-5, rtol=0)
    # and frame_0 is the texture itself (anchor at the frame centre)
    oy, ox = (40 - 24) // 2, (46 - 30) // 2
    torch.testing.assert_close(f0, tex[:, oy : oy + 24, ox : ox + 30], atol=1e-5, rtol=0)


def test_target_is_rendered_not_interpolated_and_each_time_is_independent():
    gen = SyntheticGenerator(SyntheticConfig(**{**SMALL, "objects": [2, 3]}))
    scene = gen.scene(11)
    joint = render(scene, (0.0, 0.3, 1.0))
    alone = render(scene, (0.3,))
    assert torch.equal(joint[1], alone[0])
    # the true frame at 0.3 is not the blend of the inputs
    blend = 0.7 * joint[0] + 0.3 * joint[2]
    assert (joint[1] - blend).abs().mean() > 1e-3


def test_lighting_change_is_linear_in_t():
    size = (16, 16)
    tex = 0.2 + 0.5 * torch.rand(3, 20, 20, generator=torch.Generator().manual_seed(1))
    scene = Scene(size, _still_camera(), [_background(tex, (0.0, 0.0), size, gain1=1.2)], 0.0, 0, False)
    f0, ft = render(scene, (0.0, 0.25))
    torch.testing.assert_close(ft, f0 * 1.05, atol=1e-6, rtol=0)


def test_occluding_object_moves_over_background():
    size = (32, 32)
    bg = torch.zeros(3, 40, 40)
    obj_size = 11
    yy, xx = torch.meshgrid(torch.arange(obj_size) - 5.0, torch.arange(obj_size) - 5.0, indexing="ij")
    sd = torch.maximum(xx.abs(), yy.abs()) - 3.5  # a 7x7 square, signed distance in texture px
    coverage = (4.0 - sd).clamp(0, 8)
    coverage[[0, -1], :] = 0
    coverage[:, [0, -1]] = 0
    tex = torch.cat([torch.ones(3, obj_size, obj_size), coverage[None]])
    obj = Layer(tex, (5.0, 5.0), np.array([10.0, 12.0]), np.array([8.0, 0.0]), np.zeros(2), 0.0, 0.0, 0.0, 0.0,
                1.0, np.ones(3), np.ones(3))
    scene = Scene(size, _still_camera(), [_background(bg, (0, 0), size), obj], 0.0, 0, False)
    f0, fh = render(scene, (0.0, 0.5))
    torch.testing.assert_close(f0[0, 9:16, 7:14], torch.ones(7, 7), atol=1e-5, rtol=0)
    assert f0[0].sum().item() == pytest.approx(49, abs=1e-3)
    # at t = 0.5 it moved 4 px to the right, still covering the background completely
    torch.testing.assert_close(fh[0, 9:16, 11:18], torch.ones(7, 7), atol=1e-5, rtol=0)
    assert fh[0].sum().item() == pytest.approx(49, abs=1e-3)


def test_motion_covers_small_and_large_displacements_within_the_limit():
    cfg = SyntheticConfig(size=[32, 32], objects=[1, 3], max_translation=30.0, texture_weights={"gradient": 1.0})
    gen = SyntheticGenerator(cfg)
    disp = []
    for seed in range(120):
        scene = gen.scene(seed)
        disp += [layer_displacement(layer, scene.camera, scene.size) for layer in scene.layers]
    disp = np.array(disp)
    assert disp.max() <= 30.0 * 1.25  # camera rotation/zoom adds a little to off-centre objects
    assert (disp < 2.0).mean() > 0.1
    assert (disp > 18.0).mean() > 0.05
    assert np.median(disp) > 2.0


def test_image_textures_come_from_the_given_files(tmp_path):
    colour = (51, 102, 204)
    Image.new("RGB", (64, 48), colour).save(tmp_path / "flat.png")
    cfg = SyntheticConfig(size=[24, 24], objects=[0, 0], texture_weights={"image": 1.0},
                          texture_sources=[str(tmp_path)], shading=0.0, lighting=0.0, noise=0.0)
    sample = SyntheticDataset(cfg, seed=0)[0]
    expected = torch.tensor(colour, dtype=torch.float32).view(3, 1, 1) / 255
    torch.testing.assert_close(sample.frame0, expected.expand(3, 24, 24), atol=1 / 255, rtol=0)


def test_t_choices_and_range():
    ds = SyntheticDataset(SyntheticConfig(**SMALL, t=[0.25, 0.75]), seed=0)
    assert {ds[i].t for i in range(12)} == {0.25, 0.75}
    ts = [SyntheticDataset(SyntheticConfig(**SMALL, t_range=[0.1, 0.9]), seed=0)[i].t for i in range(6)]
    assert all(0.1 <= t <= 0.9 for t in ts) and len(set(ts)) == 6


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"size": [4, 4]}, "size"),
        ({"objects": [3, 1]}, "objects"),
        ({"texture_weights": {"plaid": 1.0}}, "plaid"),
        ({"texture_weights": {"image": 1.0}}, "no usable texture"),
        ({"t": 1.5}, "t must be"),
    ],
)
def test_bad_settings_raise(kwargs, match):
    with pytest.raises(VfikitError, match=match):
        SyntheticGenerator(SyntheticConfig(**kwargs))


def test_motion_blur_averages_the_exposure_and_stays_exact_at_t():
    import dataclasses

    gen = SyntheticGenerator(SyntheticConfig(**SMALL, noise=0.0, quantize=False))
    sharp = dataclasses.replace(gen.scene(4), shutter=0.0)
    blurred = dataclasses.replace(sharp, shutter=0.2, blur_samples=3)
    got = render(blurred, (0.0, 0.5))
    expected = torch.stack([render(sharp, (t - 0.1, t, t + 0.1)).mean(0) for t in (0.0, 0.5)])
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
    assert not torch.equal(got[1], render(sharp, (0.5,))[0])
    assert torch.equal(render(blurred, (0.5,))[0], got[1])


def test_exact_motion_of_an_integer_translation_is_the_translation_everywhere_inside():
    from vfikit.data.synthetic import exact_motion

    size = (24, 30)
    tex = torch.rand(3, 40, 46, generator=torch.Generator().manual_seed(0))
    scene = Scene(size, _still_camera(), [_background(tex, (4.0, -6.0), size)], 0.0, 0, False)
    motion = exact_motion(scene, 0.5)
    # at t = 0.5 the background has moved (2, -3): it was 2 px left and 3 px lower in frame 0
    assert torch.equal(motion[0], torch.full(size, -2.0)) and torch.equal(motion[1], torch.full(size, 3.0))
    assert torch.equal(motion[2], torch.full(size, 2.0)) and torch.equal(motion[3], torch.full(size, -3.0))
    # visible where the point stays inside the frame: x - 2 >= 0 and y + 3 <= 23 in frame 0
    expected0 = torch.zeros(size)
    expected0[: 24 - 3, 2:] = 1
    assert torch.equal(motion[4], expected0)


def _warp_error(frame: torch.Tensor, target: torch.Tensor, flow: torch.Tensor, visible: torch.Tensor) -> float:
    from vfikit.ops import backward_warp

    warped = backward_warp(frame[None], flow[None])[0]
    return float(((warped - target).abs().mean(0) * visible).sum() / visible.sum())


def test_exact_flows_warp_the_inputs_onto_the_frame_at_t_wherever_visible():
    from vfikit.data.synthetic import exact_motion

    cfg = SyntheticConfig(size=[64, 80], objects=[3, 4], max_translation=12.0, noise=0.0, lighting=0.0,
                          motion_blur=0.0, quantize=False, texture_weights={"gradient": 1.0, "noise": 1.0})
    gen = SyntheticGenerator(cfg)
    for seed in range(4):
        scene = gen.scene(seed)
        t = 0.3 + 0.1 * seed
        f0, ft, f1 = render(scene, (0.0, t, 1.0))
        motion = exact_motion(scene, t)
        for frame, flow, visible in ((f0, motion[0:2], motion[4]), (f1, motion[2:4], motion[5])):
            assert visible.mean() > 0.5  # most of the frame is seen in both inputs
            error = _warp_error(frame, ft, flow, visible)
            assert error < 0.01, (seed, error)  # bilinear resampling of the texture only
            assert _warp_error(frame, ft, torch.zeros_like(flow), visible) > 3 * error  # the flows matter
        # the occluded pixels are really not reproduced: there the warp misses
        hidden = (motion[4] == 0) & (motion[5] == 1)
        if hidden.sum() > 20:
            assert _warp_error(f0, ft, motion[0:2], hidden.float()) > 3 * _warp_error(f0, ft, motion[0:2], motion[4])


def test_synthetic_samples_carry_their_motion_through_the_training_transforms():
    from vfikit.data.synthetic import exact_motion, exact_pair_motion
    from vfikit.data.transforms import training_transforms

    cfg = SyntheticConfig(size=[48, 64], objects=[1, 2], max_translation=8.0, noise=0.0, lighting=0.0,
                          motion_blur=0.0, quantize=False, texture_weights={"gradient": 1.0}, exact_motion=True)
    assert SyntheticGenerator(SyntheticConfig(**{**cfg.__dict__, "exact_motion": False})).sample(3).motion is None
    sample = SyntheticGenerator(cfg).sample(3)
    assert sample.motion is not None and sample.motion.shape == (12, 48, 64)
    scene = SyntheticGenerator(cfg).scene(3)
    assert torch.equal(sample.motion, torch.cat([exact_motion(scene, sample.t), exact_pair_motion(scene)]))
    transform = training_transforms([32, 40], hflip=1.0, vflip=1.0, temporal_swap=1.0)
    out = transform(sample, np.random.default_rng(0))
    # whatever crop, flips and swap did, the flows still warp the inputs onto the target
    m = out.motion
    for frame, flow, visible in ((out.frame0, m[0:2], m[4]), (out.frame1, m[2:4], m[5])):
        assert _warp_error(frame, out.target, flow, visible) < 0.01
    # and the flows between the inputs warp each input onto the other
    pairs = ((out.frame1, out.frame0, m[6:8], m[10]), (out.frame0, out.frame1, m[8:10], m[11]))
    for frame, onto, flow, visible in pairs:
        assert _warp_error(frame, onto, flow, visible) < 0.01
