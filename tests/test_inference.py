"""Interpolator: layouts, padding undone exactly, t by bisection with its bound, tiling, precision."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch.nn import functional as F

from vfikit import Interpolator, create_model
from vfikit.errors import VfikitError
from vfikit.inference import feather, tile_starts
from vfikit.models.base import VFIModel


class Midpoint(VFIModel):
    """Midpoint-only toy model: the average of the two frames; counts its calls."""

    arbitrary_t = False

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, frame0, frame1, t=None, return_aux=False):
        assert t is None or t == 0.5
        self.calls += 1
        return (frame0 + frame1) / 2


class Lerp(VFIModel):
    """Arbitrary-t toy model: linear blend."""

    arbitrary_t = True

    def forward(self, frame0, frame1, t=None, return_aux=False):
        t = 0.5 if t is None else t
        return (1 - t) * frame0 + t * frame1


class LocalBlur(VFIModel):
    """Output depends on a 5x5 neighbourhood (radius 2): tiling must be exact for it."""

    def forward(self, frame0, frame1, t=None, return_aux=False):
        x = F.pad((frame0 + frame1) / 2, (2, 2, 2, 2), mode="replicate")
        return (F.avg_pool2d(x, 5, stride=1) - 0.5) * 8 + 0.5  # leaves [0, 1]: the clamp is exercised


def frames(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(*shape, generator=g), torch.rand(*shape, generator=g)


def test_layouts_dtype_and_clamping():
    ip = Interpolator(LocalBlur(), device="cpu")
    f0, f1 = frames(3, 20, 30)
    out = ip(f0, f1)
    assert out.shape == (3, 20, 30) and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1 and (out == 0).any() and (out == 1).any()
    out64 = ip(f0.double(), f1.double())
    assert out64.dtype == torch.float64 and out64.shape == (3, 20, 30)
    b0, b1 = frames(2, 3, 20, 30, seed=1)
    batch = ip(b0, b1)
    assert batch.shape == (2, 3, 20, 30)
    torch.testing.assert_close(batch[1], ip(b0[1], b1[1]))


def test_bisection_hits_reachable_t_within_the_bound():
    model = Midpoint()
    ip = Interpolator(model, device="cpu", max_depth=5)
    f0, f1 = frames(1, 3, 8, 8)
    bound = 2.0 ** -(5 + 1)
    for t in (0.1, 0.25, 1 / 3, 0.5, 0.61, 0.99):
        r = ip.reachable_t(t)
        assert abs(r - t) <= bound
        assert (r * 32) == int(r * 32)  # a multiple of 1/32
        torch.testing.assert_close(ip(f0, f1, t), (1 - r) * f0 + r * f1, rtol=0, atol=1e-6)
    assert ip.reachable_t(0.001) == 0.0
    assert torch.equal(ip(f0, f1, 0.001), f0)


def test_bisection_cost_and_shared_tree():
    model = Midpoint()
    ip = Interpolator(model, device="cpu", max_depth=6)
    f0, f1 = frames(1, 3, 8, 8)
    ip(f0, f1, 0.375)  # 3/8: three levels
    assert model.calls == 3
    model.calls = 0
    outs = ip.interp_many(f0, f1, [0.25, 0.5, 0.75, 0.125])
    assert model.calls == 4  # 1/2, 1/4, 3/4, 1/8: each node once
    for t, out in zip([0.25, 0.5, 0.75, 0.125], outs):
        torch.testing.assert_close(out, (1 - t) * f0 + t * f1, rtol=0, atol=1e-6)


def test_native_t_models_are_called_with_t():
    ip = Interpolator(Lerp(), device="cpu")
    f0, f1 = frames(3, 8, 8)
    assert ip.reachable_t(0.3) == 0.3
    torch.testing.assert_close(ip(f0, f1, 0.3), 0.7 * f0 + 0.3 * f1)
    edsc = Interpolator("edsc_m", device="cpu", allow_untrained=True)
    assert edsc.arbitrary_t and edsc.reachable_t(0.3) == 0.3


def test_padding_is_undone_exactly_for_a_real_model():
    model = create_model("compressed_adacof_k5_d1", convention="official")
    f0, f1 = frames(1, 3, 21, 37, seed=2)
    with torch.no_grad():
        direct = model(f0, f1).clamp(0, 1)
    # same memory format: bit-identical
    exact = Interpolator(model, device="cpu", channels_last=False, allow_untrained=True)
    torch.testing.assert_close(exact(f0, f1), direct, rtol=0, atol=0)


@pytest.mark.parametrize("arch", ["compressed_adacof_k5_d1", "cdfi", "dsepconv", "edsc_s", "sepconv"])
def test_official_convention_models_run_nchw_by_default_and_equal_the_model_exactly(arch):
    """NHWC convolutions round differently; the official truncating sampler can turn that into another pixel
    (an official AdaCoF checkpoint differed by 1.7e-4 at one pixel). One model of every family with an official
    format: with the Interpolator's defaults it computes exactly what the model does in NCHW."""
    model = create_model(arch, convention="official")
    f0, f1 = frames(1, 3, 40, 56, seed=4)
    with torch.no_grad():
        direct = model(f0, f1).clamp(0, 1)
    ip = Interpolator(model, device="cpu", allow_untrained=True)
    assert ip.memory_format == torch.contiguous_format
    torch.testing.assert_close(ip(f0, f1), direct, rtol=0, atol=0)
    model = create_model("compressed_adacof_k5_d1", convention="official")
    assert Interpolator(model, device="cpu", channels_last=True, allow_untrained=True).memory_format == \
        torch.channels_last  # still available on request


def test_channels_last_default_on_cpu_computes_the_same_frames():
    model = create_model("compressed_adacof_k5_d1")
    f0, f1 = frames(1, 3, 40, 56, seed=4)
    with torch.no_grad():
        direct = model(f0, f1).clamp(0, 1)
    ip = Interpolator(model, device="cpu", allow_untrained=True)
    assert ip.memory_format == torch.channels_last
    out = ip(f0, f1)
    assert out.is_contiguous()
    torch.testing.assert_close(out, direct, rtol=1e-5, atol=1e-5)


def test_tiny_frames_work_and_padding_is_cropped_exactly():
    f0, f1 = frames(3, 5, 7, seed=3)
    out = Interpolator(Midpoint(), device="cpu")(f0, f1)
    torch.testing.assert_close(out, (f0 + f1) / 2, rtol=0, atol=0)
    model = create_model("compressed_adacof_k5_d1", convention="official")
    with pytest.raises(VfikitError, match="reflect"):
        model(f0[None], f1[None])
    tiny = Interpolator(model, device="cpu", allow_untrained=True)(f0, f1)
    assert tiny.shape == (3, 5, 7) and bool(torch.isfinite(tiny).all())


def test_tile_geometry():
    assert tile_starts(100, 128, 32) == [0]
    starts = tile_starts(300, 128, 32)
    assert starts[0] == 0 and starts[-1] == 300 - 128
    assert all(b - a <= 128 - 32 for a, b in itertools.pairwise(starts))
    w = feather(128, 96, 300, 32, torch.device("cpu"))
    assert torch.all(w[:8] == 0) and torch.all(w[24:104] == 1) and torch.all(w[-8:] == 0)
    left = feather(128, 0, 300, 32, torch.device("cpu"))
    right = feather(128, 96, 300, 32, torch.device("cpu"))
    torch.testing.assert_close(left[96:] + right[:32], torch.ones(32))  # weights sum to one across the overlap


@pytest.mark.parametrize(("tile", "overlap"), [(64, 16), (96, 40)])
def test_tiling_is_exact_for_models_with_local_support(tile, overlap):
    """Stated tolerance: a model whose output depends on inputs within overlap // 4 px gives the
    untiled result (to float rounding, 1e-6) at every pixel, seams included."""
    f0, f1 = frames(2, 3, 150, 203, seed=4)
    full = Interpolator(LocalBlur(), device="cpu")(f0, f1)
    tiled = Interpolator(LocalBlur(), device="cpu", tile=tile, tile_overlap=overlap)(f0, f1)
    torch.testing.assert_close(tiled, full, rtol=0, atol=1e-6)


def test_tiling_a_registered_network_with_local_kernels_is_exact():
    """compressed AdaCoF whose heads predict zero offsets, uniform weights and V = 0.5: the U-Net runs per
    tile, padding and cropping included, and the result is a local 5x5 average, so tiles must agree."""
    model = create_model("compressed_adacof_k5_d1")
    with torch.no_grad():
        for h in model.heads.values():
            h[7].weight.zero_()
            h[7].bias.zero_()
    f0, f1 = frames(1, 3, 90, 96, seed=5)
    full = Interpolator(model, device="cpu", allow_untrained=True)(f0, f1)
    tiled = Interpolator(model, device="cpu", tile=64, tile_overlap=32, allow_untrained=True)(f0, f1)  # 2 x 2 tiles
    torch.testing.assert_close(tiled, full, rtol=0, atol=1e-5)


class OutOfMemoryAbove(LocalBlur):
    """Raises the CUDA out-of-memory error for inputs larger than ``limit`` px per side."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def forward(self, frame0, frame1, t=None, return_aux=False):
        if max(frame0.shape[-2:]) > self.limit:
            raise torch.OutOfMemoryError(f"fake: {tuple(frame0.shape)} does not fit")
        return super().forward(frame0, frame1, t, return_aux)


def test_auto_tiling_retries_with_smaller_tiles_after_out_of_memory():
    f0, f1 = frames(1, 3, 300, 260, seed=8)
    full = Interpolator(LocalBlur(), device="cpu")(f0, f1)
    ip = Interpolator(OutOfMemoryAbove(160), device="cpu", tile="auto", tile_overlap=32)
    torch.testing.assert_close(ip(f0, f1), full, rtol=0, atol=1e-6)
    assert ip._auto_tile == 128  # 300 -> 128 (halved to a multiple of 32 until it fits)
    with pytest.raises(torch.OutOfMemoryError):
        Interpolator(OutOfMemoryAbove(160), device="cpu")(f0, f1)


def test_auto_tiling_on_cpu_tiles_large_frames(monkeypatch):
    import vfikit.inference as inference

    monkeypatch.setattr(inference, "AUTO_CPU_PIXELS", 100 * 100)
    monkeypatch.setattr(inference, "AUTO_CPU_TILE", 64)
    f0, f1 = frames(1, 3, 130, 150, seed=9)
    full = Interpolator(LocalBlur(), device="cpu")(f0, f1)
    never_big = OutOfMemoryAbove(64)  # would fail if any call saw more than a 64-px tile
    torch.testing.assert_close(Interpolator(never_big, device="cpu", tile="auto", tile_overlap=16)(f0, f1), full,
                               rtol=0, atol=1e-6)


def test_precision_options_run_on_cpu():
    model = create_model("compressed_adacof_k5_d1")
    f0, f1 = frames(1, 3, 32, 32, seed=6)
    ref = Interpolator(model, device="cpu", allow_untrained=True)(f0, f1)
    bf16 = Interpolator(model, device="cpu", precision="bf16", allow_untrained=True)(f0, f1)
    assert bf16.dtype == torch.float32 and bool(torch.isfinite(bf16).all())
    assert (bf16 - ref).abs().max() < 0.05


def test_argument_errors():
    with pytest.raises(VfikitError, match="'fp8'"):
        Interpolator(Midpoint(), precision="fp8")
    with pytest.raises(VfikitError, match="32"):
        Interpolator(Midpoint(), tile=32)
    with pytest.raises(VfikitError, match="max_depth"):
        Interpolator(Midpoint(), max_depth=0)
    if not torch.cuda.is_available():
        with pytest.raises(VfikitError, match="CUDA is not available"):
            Interpolator(Midpoint(), device="cuda")
    ip = Interpolator(Midpoint(), device="cpu")
    f0, f1 = frames(3, 8, 8)
    with pytest.raises(VfikitError, match=r"1\.5"):
        ip(f0, f1, 1.5)
    with pytest.raises(VfikitError, match=r"\(3, 8, 8\) vs \(3, 8, 9\)"):
        ip(f0, torch.rand(3, 8, 9))
    with pytest.raises(VfikitError, match="dtype"):
        ip((f0 * 255).to(torch.uint8), f1)
    assert math.isclose(ip.reachable_t(1 / 3), 21 / 64)


def test_frames_yields_timestamped_stream_through_the_interpolator():
    interp = Interpolator(create_model("overlay"))
    frames = [torch.full((3, 8, 8), v) for v in (0.0, 0.5, 1.0)]
    out = list(interp.frames(frames, factor=4))
    assert [float(ts) for ts, _ in out] == [i / 4 for i in range(9)]
    torch.testing.assert_close(out[1][1], torch.full((3, 8, 8), 0.125))  # overlay blend at t = 1/4


def test_untrained_networks_are_refused_unless_allowed(tmp_path):
    """A learned model whose weights were never loaded produces garbage: refused, naming --weights."""
    from vfikit.hub import save_vfikit

    model = create_model("compressed_adacof_k5_d1")
    with pytest.raises(VfikitError, match=r"compressed_adacof_k5_d1 has no trained weights.*--weights"):
        Interpolator(model, device="cpu")
    with pytest.raises(VfikitError, match="no trained weights"):
        Interpolator("cdfi", device="cpu")
    assert Interpolator(model, device="cpu", allow_untrained=True).model is model
    Interpolator(create_model("overlay"), device="cpu")  # weight-free models need nothing
    Interpolator(create_model("flow_dis"), device="cpu")
    path = save_vfikit(model, tmp_path / "m.vfikit")
    Interpolator(create_model("compressed_adacof_k5_d1", weights=path), device="cpu")  # loaded from a file
    fresh = create_model("compressed_adacof_k5_d1")
    fresh.load_state_dict(model.state_dict())  # or from a state dict
    Interpolator(fresh, device="cpu")


def test_non_finite_or_out_of_range_frames_are_refused():
    ip = Interpolator(Midpoint(), device="cpu")
    f0, f1 = frames(3, 8, 8)
    bad = f0.clone()
    bad[1, 2, 3] = float("nan")
    with pytest.raises(VfikitError, match="frame0 holds NaN or infinite"):
        ip(bad, f1)
    bad[1, 2, 3] = float("inf")
    with pytest.raises(VfikitError, match="NaN or infinite"):
        ip(bad, f1)
    with pytest.raises(VfikitError, match=r"frame1 has values from .* to 25\d.*divide by 255"):
        ip(f0, f1 * 255)  # 0..255 floats were clipped silently
    with pytest.raises(VfikitError, match="from -0.01"):
        ip(f0, f1 - 0.01 - f1.min())
    torch.testing.assert_close(ip(f0, f1 * (1 + 5e-4)), (f0 + (f1 * (1 + 5e-4)).clamp(0, 1)) / 2)  # within tolerance


def test_auto_precision_is_bf16_only_for_declared_models_where_bf16_is_measured_faster(monkeypatch):
    from vfikit import runtime

    guided, other = create_model("guided_adacof_k5"), create_model("compressed_adacof_k5_d1")
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(runtime, "cpu_bf16_faster", lambda: True)
    assert runtime.resolve_precision("auto", cpu, guided) == "bf16"
    assert runtime.resolve_precision("auto", cpu, other) == "fp32"  # not measured in bf16: stays fp32
    assert runtime.resolve_precision("auto", gpu, guided) == "fp32"
    assert runtime.resolve_precision("auto", cpu, create_model("guided_cdfi")) == "fp32"
    assert runtime.resolve_precision("fp32", cpu, guided) == "fp32"  # an explicit choice is kept
    ip = Interpolator(guided, device="cpu", precision="auto", allow_untrained=True)
    assert ip.precision == "bf16"
    f0, f1 = frames(1, 3, 40, 56, seed=2)
    out = ip(f0, f1)
    ref = Interpolator(guided, device="cpu", precision="fp32", allow_untrained=True)(f0, f1)
    assert out.dtype == torch.float32 and (out - ref).abs().max() < 1e-2
    monkeypatch.setattr(runtime, "cpu_bf16_faster", lambda: False)  # e.g. emulated bf16, slower: fp32
    assert Interpolator(guided, device="cpu", precision="auto", allow_untrained=True).precision == "fp32"
    with pytest.raises(VfikitError, match="'fp8'"):
        runtime.resolve_precision("fp8", cpu, guided)


def test_the_cpu_precision_is_chosen_by_measurement_once_per_machine(monkeypatch, tmp_path):
    """Issue 24: bf16 where it is measured at least 5% faster, whatever the CPU's name; the measurement is kept in
    the cache folder and read back instead of measuring again; a broken or unwritable cache means measuring."""
    from vfikit import runtime

    monkeypatch.setenv("VFIKIT_CACHE_DIR", str(tmp_path / "cache"))
    calls = []
    times = {"fp32": 1.0, "bf16": 0.5}
    monkeypatch.setattr(runtime, "time_cpu_precisions", lambda: calls.append(1) or dict(times))
    monkeypatch.setattr(runtime, "_MEASURED", {})
    assert runtime.cpu_bf16_faster() is True and len(calls) == 1
    saved = tmp_path / "cache" / "cpu_precision.json"
    assert saved.is_file() and "bf16_faster" in saved.read_text()
    monkeypatch.setattr(runtime, "_MEASURED", {})  # a new process: reads the file, does not measure
    times["bf16"] = 2.0
    assert runtime.cpu_bf16_faster() is True and len(calls) == 1
    saved.write_text("{not json")  # a broken cache is measured again, and replaced
    monkeypatch.setattr(runtime, "_MEASURED", {})
    assert runtime.cpu_bf16_faster() is False and len(calls) == 2
    times["bf16"] = 0.98  # under the 5% margin: float32
    saved.unlink()
    monkeypatch.setattr(runtime, "_MEASURED", {})
    assert runtime.cpu_bf16_faster() is False and len(calls) == 3
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    monkeypatch.setenv("VFIKIT_CACHE_DIR", str(blocker / "cache"))  # cannot be written: still a choice
    monkeypatch.setattr(runtime, "_MEASURED", {})
    assert runtime.cpu_bf16_faster() is False and len(calls) == 4


def test_the_precision_probe_times_both_precisions():
    from vfikit import runtime

    times = runtime.time_cpu_precisions(rounds=1)
    assert set(times) == {"fp32", "bf16"} and all(0 < v < 5 for v in times.values())


class AnyTBlur(LocalBlur):
    arbitrary_t = True  # (ignores t)


def test_large_frames_run_the_second_model_chosen_on_the_whole_frame():
    """Frames whose shorter side reaches min_side run the second model, before tiling: every tile of a large
    frame (even an edge tile smaller than min_side) runs it, and smaller frames keep the first."""
    ip = Interpolator(Lerp(), device="cpu", tile=64, tile_overlap=16, large_frames=(100, AnyTBlur()))
    small, large = frames(1, 3, 99, 150, seed=5), frames(1, 3, 100, 150, seed=6)
    torch.testing.assert_close(ip(*small, 0.25), Interpolator(Lerp(), device="cpu", tile=64)(*small, 0.25))
    blur = Interpolator(AnyTBlur(), device="cpu", tile=64, tile_overlap=16)
    torch.testing.assert_close(ip(*large), blur(*large), rtol=0, atol=0)
    assert (ip(*large) - Interpolator(Lerp(), device="cpu")(*large)).abs().max() > 0.1
    assert ip.model_for(99, 500) is ip.model and ip.model_for(100, 100) is ip.large_frames[1]


def test_large_frames_argument_errors():
    for bad, match in (((0, Lerp()), "min_side"), ((True, Lerp()), "min_side"), ((100, "lerp"), "nn.Module"),
                       ((100,), "pair"), ((100, Midpoint()), "handle t alike")):
        with pytest.raises((VfikitError, TypeError), match=match):
            Interpolator(Lerp(), device="cpu", large_frames=bad)


def test_nan_output_is_never_returned_silently():
    """Issue 25 defect 3: weights that turn NaN after loading (or a model that makes NaN) must not give
    a black frame without a word."""

    class Broken(Midpoint):
        def forward(self, frame0, frame1, t=None, return_aux=False):
            out = super().forward(frame0, frame1)
            out[:, :, 0, 0] = float("nan")
            return out

    ip = Interpolator(Broken(), device="cpu")
    f0, f1 = frames(2, 3, 8, 8)
    with pytest.raises(VfikitError, match=r"the model produced non-finite output \(NaN or infinite\)"):
        ip(f0, f1)
    model = create_model("compressed_adacof_k5_d1")
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] = float("nan")
    with pytest.raises(VfikitError, match="non-finite"):
        Interpolator(model, device="cpu", allow_untrained=True)(f0, f1)
