"""Time of the fused guided AdaCoF synthesis op (CPU), against its version at an earlier commit, in one process.

Cases: frame size x network scale (1: heads at the frames' size, 2: half resolution, as
``guided_adacof_k5_fast``) x head dtype (float32, bfloat16 bits), heads channels-last as the network
leaves them, 5x5 taps, smooth flows of a few pixels. Rounds interleave the two versions and every
case, so load affects both alike; the table gives medians and the ratio before/after per case.

    python benchmarks/guided_synthesis.py --baseline 85a70d5 --rounds 7 \
        --out benchmarks/results/guided_synthesis_cpu.md
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
OP_PATH = "src/vfikit/ops/guided_synthesis.py"
KERNELS_PATH = "src/vfikit/ops/synthesis_kernels.py"  # the compiled loops, in a module of their own since 7394663
KERNELS_IMPORT = "from vfikit.ops.synthesis_kernels import"


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def module_at(commit: str):
    """``vfikit.ops.guided_synthesis`` as it was at ``commit`` (imported under another name, with the compiled
    loops of that commit where they lived in a module of their own)."""
    def show(path: str) -> str | None:
        done = subprocess.run(["git", "show", f"{commit}:{path}"], cwd=ROOT, capture_output=True, text=True)
        return done.stdout if done.returncode == 0 else None

    folder, text, kernels = Path(tempfile.mkdtemp()), show(OP_PATH), show(KERNELS_PATH)
    if kernels is not None:
        (folder / f"synthesis_kernels_{commit}.py").write_text(kernels)
        _load(folder / f"synthesis_kernels_{commit}.py")
        text = text.replace(KERNELS_IMPORT, f"from synthesis_kernels_{commit} import")
    path = folder / f"guided_synthesis_{commit}.py"
    path.write_text(text)
    return _load(path)


def inputs(width: int, height: int, scale: int, bf16: bool) -> tuple:
    """Arguments of ``guided_adacof_synthesis`` for one frame: (frame0, frame1, kernel0, kernel1, occlusion,
    flow0, flow1, blend0)."""
    g = torch.Generator().manual_seed(0)
    frames = [torch.rand(1, 3, height, width, generator=g) for _ in range(2)]
    flows = [F.interpolate(torch.randn(1, 2, height // 32, width // 32, generator=g) * 4, size=(height, width),
                           mode="bilinear", align_corners=False) for _ in range(2)]
    blend = torch.rand(1, 1, height, width, generator=g) * 0.98 + 0.01
    lh, lw = height // scale, width // scale
    dtype = torch.bfloat16 if bf16 else torch.float32

    def head(channels: int, std: float) -> torch.Tensor:
        return (torch.randn(1, channels, lh, lw, generator=g) * std).to(dtype).contiguous(
            memory_format=torch.channels_last)

    kernels = [(head(25, 0.2), head(25, 0.5), head(25, 0.5)) for _ in range(2)]
    return (*frames, *kernels, head(1, 1.0), *flows, blend)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default=None, help="a commit whose op is timed beside the current one")
    parser.add_argument("--sizes", nargs="+", default=["640x480", "1280x720"])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    from vfikit.ops import guided_synthesis

    versions = {"now": guided_synthesis}
    if args.baseline:
        versions = {f"at {args.baseline}": module_at(args.baseline), **versions}
    cases = {}
    for size in args.sizes:
        width, height = (int(v) for v in size.lower().split("x"))
        for scale in (1, 2):
            for bf16 in (False, True):
                cases[(size, scale, "bf16" if bf16 else "fp32")] = inputs(width, height, scale, bf16)
    times: dict = {}
    with torch.inference_mode():
        for case, tensors in cases.items():  # warm-up (compilation) and agreement of the versions
            outs = [m.guided_adacof_synthesis(*tensors, signed_taps=True) for m in versions.values()]
            diff = max(float((o - outs[-1]).abs().max()) for o in outs)
            times[case] = {name: [] for name in versions} | {"diff": diff}
        for _ in range(args.rounds):
            for case, tensors in cases.items():
                for name, module in versions.items():
                    start = time.perf_counter()
                    module.guided_adacof_synthesis(*tensors, signed_taps=True)
                    times[case][name].append(time.perf_counter() - start)
    names = list(versions)
    lines = ["# The fused guided AdaCoF synthesis op (CPU)", "",
             f"`{' '.join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])}`", "",
             f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs; torch "
             f"{torch.__version__}, {torch.get_num_threads()} threads; "
             f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}; load average "
             f"{os.getloadavg()[0]:.2f} at the end. Medians of {args.rounds} interleaved rounds after a warm-up, "
             "seconds per frame; heads channels-last; `max diff`: largest difference between the versions' frames.",
             "", "| size | net scale | heads | " + " | ".join(f"{n} median s (min-max)" for n in names)
             + (" | before/after | max diff |" if len(names) > 1 else " |"),
             "| --- | --- | --- | " + " | ".join("---" for _ in names) + (" | --- | --- |" if len(names) > 1 else " |")]
    for (size, scale, dtype), record in times.items():
        cells = [f"{statistics.median(record[n]):.4f} ({min(record[n]):.4f}-{max(record[n]):.4f})" for n in names]
        row = f"| {size} | {scale} | {dtype} | " + " | ".join(cells)
        if len(names) > 1:
            ratio = statistics.median(a / b for a, b in zip(record[names[0]], record[names[1]]))
            row += f" | {ratio:.2f}x | {record['diff']:.1e}"
        lines.append(row + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out is not None:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
