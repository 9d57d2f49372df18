"""Where the time of a flow-guided model goes, per stage and frame size (CPU), in one process.

Stages of a guided model: ``dis`` (the two OpenCV DIS calls of the guide), ``flow refiner`` (a model's
learned correction of those flows, where it has one), ``motion`` (forward
splatting, visibility and hole filling: vfikit's own guide work), ``network`` (the U-Net's input, the
U-Net and heads), ``sampling`` (the kernel sampling of both frames and the blend: since the fused CPU
pass, that includes upsampling the heads of a half-resolution network), and ``total`` (the model through the
``Interpolator``, as ``vfikit interpolate`` runs it). ``flow_dis`` is timed whole and by stage, and the
reference ``plain DIS`` (OpenCV DIS-medium at its own finest scale, both ways, plus one backward
warp) shows what OpenCV alone costs. Rounds are interleaved, so load affects every entry alike;
the table gives medians.

Run from the repository root (weights: a .vfikit file or a training checkpoint):

    python benchmarks/speed_stages.py --models guided_adacof_k5.vfikit flow_dis \
        --sizes 640x480 1280x720 --rounds 5 --out benchmarks/results/speed_stages_cpu.md
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from vfikit import Interpolator
from vfikit.hub import create_model

CLIP = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "clips" / "davis_car_turn" / "car-turn.mp4"


def real_pair(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Frames 0 and 2 of the DAVIS car-turn clip resized to (height, width), float32 RGB in [0, 1]
    (real content: DIS's cost depends on it); random frames when the clip is absent."""
    import cv2

    try:
        import av

        with av.open(str(CLIP)) as container:
            frames = [f.to_ndarray(format="rgb24") for _, f in zip(range(3), container.decode(video=0))]
        pair = [cv2.resize(frames[i], (width, height), interpolation=cv2.INTER_AREA) for i in (0, 2)]
        return pair[0].astype(np.float32) / 255, pair[1].astype(np.float32) / 255
    except (OSError, ImportError):
        rng = np.random.default_rng(0)
        return rng.random((height, width, 3), np.float32), rng.random((height, width, 3), np.float32)


def load(spec: str) -> torch.nn.Module:
    """A model from ``name`` or ``name@key=value,...``: guide settings (FlowDISConfig fields) that replace the
    defaults, so one run can time a model beside its own previous setting (``...@large_side=None``)."""
    import ast

    name, _, settings = spec.partition("@")
    flow = {k: ast.literal_eval(v) for k, v in (item.split("=", 1) for item in settings.split(",") if item)}
    if flow and os.path.isfile(name):
        raise SystemExit("guide settings apply to registry models, not to files")
    return create_model(name, **({"flow": flow} if flow else {}))


def as_batch(img: np.ndarray) -> torch.Tensor:
    """(H, W, 3) float32 -> (1, 3, H, W), sharing memory."""
    return torch.from_numpy(img).permute(2, 0, 1)[None]


def stage_fns(model: torch.nn.Module, a: np.ndarray, b: np.ndarray, t: float, onnx: bool = False,
              bf16: bool = False) -> dict:
    """name -> zero-argument callable for each stage of ``model`` (guided or flow_dis)."""
    import cv2

    f0, f1 = as_batch(a), as_batch(b)
    guide = getattr(model, "guide", model)
    fns = {}
    img0, img1, f01, f10 = guide._flows(a, b)
    fns["dis"] = lambda: guide._flows(a, b)
    if hasattr(guide, "motion_numpy"):  # older versions of flow_dis computed the motion inside synthesize
        fns["motion"] = lambda: guide.motion_numpy(img0, img1, f01, f10, t)
    if getattr(model, "flow_refiner", None) is not None:  # the learned correction of DIS's flows (issue 23)
        d01, d10 = (torch.from_numpy(f).permute(2, 0, 1)[None] for f in (f01, f10))
        fns["flow refiner"] = lambda: model.flow_refiner(f0, f1, d01, d10)
    if hasattr(model, "_trunk_outputs"):
        import torch.nn.functional as F

        tt = torch.full((1,), t)
        ft0, ft1, vis, _, _ = model._guide(f0, f1, tt)
        multiple = 32 * model.net_downscale
        h, w = a.shape[:2]
        pad = (0, (-w) % multiple, 0, (-h) % multiple)

        def padded(x):
            return F.pad(x, pad, mode="replicate") if any(pad) else x.contiguous()

        x0, x1, p0, p1, pv = (padded(x) for x in (f0, f1, ft0, ft1, vis))
        if model._use_fused(x0, False):  # the compiled pass that forward runs on CPU (upsampling included)
            b0 = padded(model._guide(f0, f1, tt)[3])
            low, _ = model._trunk_outputs(x0, x1, p0, p1, pv, tt, full_size=False)
            fns["network"] = lambda: model._trunk_outputs(x0, x1, p0, p1, pv, tt, full_size=False)
            fns["sampling"] = lambda: model._fused_frame(x0, x1, p0, p1, b0, low)
        else:
            outs, _ = model._trunk_outputs(x0, x1, p0, p1, pv, tt)
            fns["network"] = lambda: model._trunk_outputs(x0, x1, p0, p1, pv, tt)
            fns["sampling"] = lambda: model._synthesise(x0, x1, p0, p1, outs)
        if bf16:  # the network under CPU bfloat16 autocast, as precision "auto" runs it on native-bf16 CPUs
            def network_bf16():
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    return fns["network"]()

            fns["network (bf16)"] = network_bf16
            ip_bf16 = Interpolator(model, device="cpu", precision="bf16")
            fns["total (bf16)"] = lambda: ip_bf16(f0, f1, t)
        if onnx:  # the same model with its network run by ONNX Runtime
            import copy

            from vfikit.models.onnx_network import use_onnx_runtime

            twin = use_onnx_runtime(copy.deepcopy(model))
            fns["network (onnx)"] = lambda: twin._trunk_outputs(x0, x1, p0, p1, pv, tt)
            ip_onnx = Interpolator(twin, device="cpu")
            fns["total (onnx)"] = lambda: ip_onnx(f0, f1, t)
    elif model is guide:
        fns["motion+warp+blend"] = lambda: guide.synthesize(img0, img1, f01, f10, t)
    ip = Interpolator(model, device="cpu")
    fns["total"] = lambda: ip(f0, f1, t)

    def plain_dis():
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        g0 = cv2.cvtColor((a * 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)
        g1 = cv2.cvtColor((b * 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)
        flow = dis.calc(g0, g1, None)
        dis.calc(g1, g0, None)
        gx, gy = np.meshgrid(np.arange(a.shape[1], dtype=np.float32), np.arange(a.shape[0], dtype=np.float32))
        cv2.remap(b, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR)

    fns["plain_dis_reference"] = plain_dis
    return fns


def default_fns(a: np.ndarray, b: np.ndarray, t: float) -> dict:
    """The video tool's default (no --model) as it runs: ``build_interpolator(None)``, precision auto,
    including its choice of model by frame size."""
    from vfikit.video.defaults import build_interpolator

    ip = build_interpolator(None)
    f0, f1 = as_batch(a), as_batch(b)
    return {"total (as vfikit interpolate)": lambda: ip(f0, f1, t)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["guided_adacof_k5.vfikit", "flow_dis"])
    parser.add_argument("--sizes", nargs="+", default=["640x480", "1280x720"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--t", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--out", type=Path, default=None, help="write the markdown table here")
    parser.add_argument("--onnx", action="store_true", help="also time guided models with ONNX Runtime")
    parser.add_argument("--bf16", action="store_true",
                        help="also time guided models with their network in bfloat16 (the CPU default where native)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = []
    with torch.inference_mode():
        for size in args.sizes:
            width, height = (int(v) for v in size.lower().split("x"))
            a, b = real_pair(width, height)
            cases = {name: default_fns(a, b, args.t) if name == "default" else
                     stage_fns(load(name).eval(), a, b, args.t, args.onnx, args.bf16) for name in args.models}
            for fns in cases.values():
                for fn in fns.values():
                    fn()  # warm-up (numba compilation, allocator)
            times: dict = defaultdict(list)
            for _ in range(args.rounds):
                for name, fns in cases.items():
                    for stage, fn in fns.items():
                        start = time.perf_counter()
                        fn()
                        times[(name, stage)].append(time.perf_counter() - start)
            for (name, stage), values in times.items():
                rows.append((size, name, stage, statistics.median(values), min(values), max(values)))
    load_avg = os.getloadavg()[0]
    lines = [
        "# Time per stage of one middle frame (CPU)",
        "",
        f"`{' '.join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])}`",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs; torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads; "
        f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}; "
        f"load average {load_avg:.2f} at the end. Medians of {args.rounds} interleaved rounds after one warm-up.",
        "",
        "| size | model | stage | median s | min s | max s |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    seen_reference = set()
    for size, name, stage, med, lo, hi in rows:
        if stage == "plain_dis_reference":
            if size in seen_reference:
                continue
            seen_reference.add(size)
            name = "OpenCV only"
        lines.append(f"| {size} | {name} | {stage} | {med:.3f} | {lo:.3f} | {hi:.3f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
