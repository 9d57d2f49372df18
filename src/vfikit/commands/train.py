"""``vfikit train CONFIG [--set key=value ...] [--resume PATH|auto]``: a thin shell over
``vfikit.config.load_config`` and ``vfikit.engine.train.train``.

Scale out with ``torchrun --nproc_per_node=N -m vfikit train CONFIG``.

When this command starts a process (torch not imported yet), ``OMP_WAIT_POLICY`` defaults to
``PASSIVE``: torch and numba each bring an OpenMP runtime whose idle threads otherwise busy-wait
and fight over the cores (2-3x slower CPU training measured on a shared 2-core machine; see
docs/training.md). Set ``OMP_WAIT_POLICY=ACTIVE`` to opt out. Under torchrun, ``NUMBA_NUM_THREADS``
likewise defaults to the cores divided by the processes per node.
"""

from __future__ import annotations

import argparse
import os
import sys


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", help="a YAML config file or the name of a packaged recipe")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value by its dotted key, e.g. optim.lr=5e-4 or data.train.0.weight=0.3 "
                             "(repeatable; values are parsed as YAML)")
    parser.add_argument("--resume", metavar="PATH|auto",
                        help="continue from a checkpoint; 'auto' takes the newest in train.out_dir (or starts fresh)")
    parser.add_argument("--out-dir", help="shorthand for --set train.out_dir=DIR")
    parser.add_argument("--stop-at", type=int, metavar="STEP",
                        help="checkpoint and stop after this step (the schedule still follows train.steps)")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")
    parser.add_argument("--list-recipes", action="store_true", help="list the packaged recipes and exit")


def run(args: argparse.Namespace) -> int:
    if "torch" not in sys.modules:  # only effective before the OpenMP runtimes load
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        local = os.environ.get("LOCAL_WORLD_SIZE", "1")
        if local.isdigit() and int(local) > 1:  # torchrun: share the cores between the processes' numba pools
            os.environ.setdefault("NUMBA_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // int(local))))
    from vfikit.config import dump_yaml, list_recipes, load_config
    from vfikit.errors import VfikitError

    if args.list_recipes:
        for name in list_recipes():
            print(name)
        return 0
    if not args.config:
        raise VfikitError("give a config file or recipe name (see --list-recipes)")
    overrides = list(args.overrides)
    if args.out_dir:
        overrides.append(f"train.out_dir={args.out_dir}")
    cfg = load_config(args.config, overrides, check_external=not args.print_config)
    if args.print_config:
        print(dump_yaml(cfg), end="")
        return 0
    from vfikit.engine.train import train

    train(cfg, resume=args.resume, stop_at=args.stop_at, log=lambda msg: print(msg, flush=True))
    return 0
