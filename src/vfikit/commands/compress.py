"""``vfikit compress CONFIG.yaml``: OBProxSG -> sparsity report -> compact model -> fine-tune -> table."""

from __future__ import annotations

import argparse
import os
import sys


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="a compression config (YAML) or packaged recipe name, e.g. compress_adacof_k5")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config entry (dotted path, YAML value); repeatable")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run in the same out_dir")
    parser.add_argument("--report-only", metavar="CHECKPOINT",
                        help="only print the sparsity report of a checkpoint (a model with zeros) and exit")


def run(args: argparse.Namespace) -> int:
    if "torch" not in sys.modules:  # only effective before the OpenMP runtimes load (see docs/training.md)
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if args.report_only:
        from vfikit.compress.report import format_report, sparsity_report
        from vfikit.engine.checkpoint import load_trained_model

        print(format_report(sparsity_report(load_trained_model(args.report_only))))
        return 0
    from vfikit.compress.pipeline import load_compress_config, run_compression

    cfg = load_compress_config(args.config, args.overrides)
    run_compression(cfg, resume=args.resume, log=lambda msg: print(msg, flush=True))
    return 0
