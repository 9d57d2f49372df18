"""The two pictures of the README: what the models make, and speed against quality over the zoo.

(a) ``docs/images/middlebury_crops.png``: for two or three Middlebury "other" sequences, the same crop
    of the frame average (``overlay``), ``flow_dis``, the default model (``guided_adacof_k5`` with its
    shipped weights, built exactly as ``vfikit interpolate`` builds it) and the ground truth, with each
    model's PSNR over the whole frame in the caption. The crop is where the frame average is worst,
    i.e. where the motion is. Middlebury is only evaluated here, never trained or tuned on.
(b) ``docs/images/speed_quality.png``: seconds per 640x480 frame against Middlebury "other" PSNR.
    Nothing is measured for (b); it reads the numbers already recorded:

    * speed: ``benchmarks/results/zoo_cpu.md`` and ``benchmarks/results/guided_cpu.md`` (``vfikit bench``,
      2-core CPU, median of the 640x480 rows);
    * PSNR measured here: ``benchmarks/results/middlebury/*_summary.json`` (``vfikit eval``);
    * PSNR of official checkpoints: the authors' reported numbers kept in the registry
      (``WeightSpec.reported_metrics``: the CDFI README table, sepconv-slomo's benchmark);
    * the budget: 2 s per 640x480 frame on this CPU (docs/weights.md, "Speed of the candidate models").

    PYTHONPATH=src python benchmarks/figures.py --root ../shared/data/middlebury_others

Needs matplotlib (``pip install matplotlib``; not a vfikit dependency).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
SPEED_FILES = (RESULTS / "zoo_cpu.md", RESULTS / "guided_cpu.md")
CPU_BUDGET_S = 2.0  # docs/weights.md: "meet the 2 s per 640x480 frame budget on this CPU"
LABEL_OFFSETS = {  # points (x, y) for labels that would overlap their neighbours
    "guided_adacof_k5": (3, 5), "guided_adacof_k5_fast": (-6, 5), "flow_dis": (5, -11),
    "compressed_adacof_k5_d1": (4, -11), "adacof_k5_d1": (-5, 13),
    "sepconv": (4, 5), "cdfi": (-6, 4),
}
COLUMNS = (("overlay", "frame average"), ("flow_dis", "flow_dis"), (None, "default"), ("gt", "ground truth"))


# -- (a) crops -------------------------------------------------------------------------------
def worst_window(error: np.ndarray, size: tuple[int, int]) -> tuple[int, int]:
    """Top-left (y, x) of the ``size`` window with the largest summed ``error`` (an integral image)."""
    h, w = size
    table = np.pad(error.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    sums = table[h:, w:] - table[:-h, w:] - table[h:, :-w] + table[:-h, :-w]
    y, x = np.unravel_index(np.argmax(sums), sums.shape)
    return int(y), int(x)


def crops_figure(root: Path, sequences: list[str], out: Path, crop: tuple[int, int]) -> list[dict]:
    """Draw (a); returns one record per sequence with the PSNR of each model."""
    import matplotlib.pyplot as plt

    from vfikit.image_files import load_rgb, to_uint8
    from vfikit.metrics import psnr
    from vfikit.video.defaults import build_interpolator, model_name

    models = {name: build_interpolator(name, device="cpu") for name, _ in COLUMNS if name != "gt"}
    default_name = model_name(models[None].model)  # (its model for large frames: Middlebury is under 720 px)
    ch, cw = crop
    left, top, gap, band = 22, 26, 6, 30  # pixels: row label, title, between crops, caption above each crop
    width, height = left + len(COLUMNS) * (cw + gap), top + len(sequences) * (ch + band) + gap
    fig = plt.figure(figsize=(width / 100, height / 100), dpi=100)  # crops are drawn 1:1, pixel for pixel
    records = []
    for row, seq in enumerate(sequences):
        f0 = load_rgb(root / "input" / seq / "frame10.png")
        f1 = load_rgb(root / "input" / seq / "frame11.png")
        gt = load_rgb(root / "gt" / seq / "frame10i11.png")
        preds = {name: interp(f0, f1, 0.5) for name, interp in models.items()}
        scores = {name: psnr(pred, gt) for name, pred in preds.items()}
        records.append({"sequence": seq, **{(k or default_name): round(v, 2) for k, v in scores.items()}})
        error = (to_uint8(preds["overlay"]).astype(np.float64) - to_uint8(gt).astype(np.float64)) ** 2
        y, x = worst_window(error.sum(axis=2), crop)
        for col, (name, title) in enumerate(COLUMNS):
            image = to_uint8(gt if name == "gt" else preds[name])[y : y + ch, x : x + cw]
            x0, y0 = left + col * (cw + gap), top + row * (ch + band) + band
            ax = fig.add_axes((x0 / width, 1 - (y0 + ch) / height, cw / width, ch / height))
            ax.imshow(image, interpolation="none", aspect="auto")
            ax.set_xticks([])
            ax.set_yticks([])
            label = default_name if name is None else title
            caption = label if name == "gt" else f"{label}: {scores[name]:.2f} dB"
            ax.set_title(caption, fontsize=7.5, pad=3)
            if col == 0:
                ax.set_ylabel(seq, fontsize=8)
    fig.suptitle('Middlebury "other": crop where the frame average is worst; PSNR over the whole frame',
                 fontsize=8, y=1 - 6 / height, va="top")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return records


# -- (b) speed against quality ---------------------------------------------------------------
def read_speeds(paths: tuple[Path, ...] = SPEED_FILES, size: str = "640x480") -> dict[str, float]:
    """Seconds per frame at ``size`` on CPU, from ``vfikit bench`` markdown tables (median ms column)."""
    speeds: dict[str, float] = {}
    for path in paths:
        header: list[str] | None = None
        for line in path.read_text().splitlines():
            if not line.startswith("|") or set(line) <= set("|- "):
                continue
            cells = [c.strip() for c in line.strip("|").split("|")]
            if header is None:
                header = cells
                continue
            row = dict(zip(header, cells))
            if row.get("size") == size and row.get("device", "").split(" ")[0] == "cpu":  # "cpu (bf16)" too
                speeds[row["model"]] = float(row["median ms"]) / 1000.0
    return speeds


def read_quality() -> dict[str, tuple[float, str]]:
    """Middlebury "other" PSNR per model: measured here (``vfikit eval`` summaries) or as the authors report."""
    from vfikit.models.catalog import get_entry, list_models, split_name

    quality: dict[str, tuple[float, str]] = {}
    for path in sorted((RESULTS / "middlebury").glob("*_summary.json")):
        summary = json.loads(path.read_text())
        name = summary["model"]  # the shipped models were evaluated as "<arch>.vfikit"
        quality[name.removesuffix(".vfikit")] = (summary["metrics"]["psnr"], "measured")
    for name in list_models(pretrained=True):
        arch, tag = split_name(name)
        if arch in quality or tag != "official":
            continue
        reported = get_entry(arch).weights[tag].reported_metrics
        value = reported.get("middlebury_other", {}).get("psnr")
        if value is None:  # sepconv-slomo reports the 12-sequence benchmark of its L1 network
            value = reported.get("middlebury_other_12", {}).get("l1_paper", {}).get("psnr")
        if value is not None:
            quality[arch] = (float(value), "reported")
    return quality


def speed_quality_figure(out: Path) -> list[dict]:
    """Draw (b); returns the points drawn."""
    import matplotlib.pyplot as plt

    speeds, quality = read_speeds(), read_quality()
    points = [{"model": m, "seconds": speeds[m], "psnr": quality[m][0], "source": quality[m][1]}
              for m in sorted(set(speeds) & set(quality))]
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for source, marker, fill in (("measured", "o", "tab:blue"), ("reported", "o", "none")):
        chosen = [p for p in points if p["source"] == source]
        label = ("PSNR measured here (vfikit eval)" if source == "measured"
                 else "PSNR reported by the authors (official weights)")
        ax.scatter([p["seconds"] for p in chosen], [p["psnr"] for p in chosen], marker=marker, s=40,
                   facecolors=fill, edgecolors="tab:blue", label=label, zorder=3)
    for p in points:
        offset = LABEL_OFFSETS.get(p["model"], (5, 4))
        ax.annotate(p["model"], (p["seconds"], p["psnr"]), textcoords="offset points", xytext=offset, fontsize=7,
                    ha="right" if offset[0] < 0 else "left")
    ax.axvline(CPU_BUDGET_S, color="tab:red", linestyle="--", linewidth=1)
    ax.set_ylim(27, 38)
    ax.set_xlim(0.002, 20)
    ax.text(CPU_BUDGET_S * 1.08, 27.4, "CPU budget:\n2 s per frame", color="tab:red", fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("seconds per 640x480 frame, 2-core CPU (vfikit bench, log scale)")
    ax.set_ylabel('Middlebury "other" PSNR (dB)')
    ax.grid(True, which="both", linewidth=0.3)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return points


def _crop_size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)x(\d+)", text)
    if not m:
        raise argparse.ArgumentTypeError(f"expected WxH, got {text!r}")
    return int(m.group(2)), int(m.group(1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", type=Path, default=REPO.parent / "shared" / "data" / "middlebury_others",
                   help="Middlebury 'other' folder with input/ and gt/")
    p.add_argument("--sequences", nargs="+", default=["Grove2", "Urban2", "DogDance"])
    p.add_argument("--crop", type=_crop_size, default=(120, 160), metavar="WxH", help="crop size (default 160x120)")
    p.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    args = p.parse_args()
    records = crops_figure(args.root, args.sequences, args.out / "middlebury_crops.png", args.crop)
    for r in records:
        print(json.dumps(r))
    for point in speed_quality_figure(args.out / "speed_quality.png"):
        print(json.dumps(point))
    print(f"wrote {args.out / 'middlebury_crops.png'} and {args.out / 'speed_quality.png'}")


if __name__ == "__main__":
    main()
