"""``vfikit compress CONFIG.yaml``: OBProxSG -> sparsity report -> compact model -> fine-tune -> table."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?",
                        help="a compression config (YAML) or packaged recipe name, e.g. compress_adacof_k5")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config entry (dotted path, YAML value); repeatable")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run in the same out_dir")
    parser.add_argument("--report-only", metavar="CHECKPOINT",
                        help="only print the sparsity report of a checkpoint (a model with zeros) and exit")
    parser.add_argument("--grow-cdfi", metavar="CHECKPOINT",
                        help="stage II: grow a trained (compressed) AdaCoF checkpoint into a CDFI initialisation "
                             "(written to --out; use it as model.init of a cdfi training config) and exit")
    parser.add_argument("--out", help="output file of --grow-cdfi")
    parser.add_argument("--force", action="store_true", help="with --grow-cdfi: overwrite --out")


def run(args: argparse.Namespace) -> int:
    if "torch" not in sys.modules:  # only effective before the OpenMP runtimes load (see docs/training.md)
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if args.report_only:
        from vfikit.compress.report import format_report, sparsity_report
        from vfikit.hub import create_model

        print(format_report(sparsity_report(create_model(Path(args.report_only)))))
        return 0
    if args.grow_cdfi:
        return _grow(args)
    from vfikit.compress.stages import load_compress_config, run_compression
    from vfikit.errors import VfikitError

    if not args.config:
        raise VfikitError("give a compression config (or --report-only / --grow-cdfi)")

    cfg = load_compress_config(args.config, args.overrides)
    run_compression(cfg, resume=args.resume, log=lambda msg: print(msg, flush=True))
    return 0


def _grow(args: argparse.Namespace) -> int:
    from vfikit.compress.grow import grow_to_cdfi
    from vfikit.errors import VfikitError
    from vfikit.hub import create_model, save_trained_weights
    from vfikit.models.guided import GuidedAdaCoF, grow_guided_cdfi
    from vfikit.runtime import count_parameters

    if not args.out:
        raise VfikitError("--grow-cdfi needs --out FILE")
    out = Path(args.out)
    if out.exists() and not args.force:
        raise VfikitError(f"{out} exists; pass --force to overwrite it")
    source = create_model(Path(args.grow_cdfi))
    if type(source) is GuidedAdaCoF:  # the flow-guided family grows into guided_cdfi (same widths and guide)
        cdfi, arch = grow_guided_cdfi(source), "guided_cdfi"
        model_args = {k: v for k, v in cdfi.model_args.items() if k not in ("convention", "channel_order")}
    else:
        cdfi, arch, model_args = grow_to_cdfi(source), "cdfi", {}
    save_trained_weights(out, cdfi, arch=arch, model_args=model_args)
    print(f"wrote {out}: {arch} ({count_parameters(cdfi):,} parameters) grown from {args.grow_cdfi}")
    return 0
