"""``pixelwise train CONFIG [key=value ...] [--run-dir RUN] [--resume [auto]] [--print-config]``"""

from __future__ import annotations

import argparse
import sys

from ._common import figures_table


def _resume_mode(text: str) -> str:
    if text != "auto":
        raise argparse.ArgumentTypeError(
            f"takes 'auto' or nothing, got {text!r}: write --resume (or --resume auto) "
            "after the config and its key=value overrides"
        )
    return text


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model from a YAML config",
        description="Train from a YAML config (a path, or a bundled name such as 'digits'), "
        "with dotted overrides such as optim.lr=0.01 data.batch_size=64.",
    )
    p.add_argument("config", help="YAML file or bundled config name")
    p.add_argument(
        "overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. train.epochs=5"
    )
    p.add_argument(
        "--run-dir",
        help="write into this directory (default: <output_dir>/<name>, never overwritten)",
    )
    p.add_argument(
        "--resume",
        nargs="?",
        const=True,
        type=_resume_mode,
        metavar="auto",
        help="continue the run in --run-dir from checkpoints/last.pt; "
        "'--resume auto' starts fresh where there is no last.pt yet",
    )
    p.add_argument(
        "--allow-config-changes",
        action="store_true",
        help="with --resume: continue although the config differs from the run's saved one "
        "in keys that change the result (a longer train.epochs recomputes the schedule)",
    )
    p.add_argument(
        "--print-config",
        action="store_true",
        help="print the fully resolved config (YAML) and exit",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..config import dump_config, load_config
    from ..experiment import run_experiment
    from ..log import logger
    from ..run import decide_resume

    overrides = list(args.overrides)
    mode = args.resume
    if "resume=auto" in overrides:
        logger.warning("resume=auto is deprecated: write --resume auto")
        overrides = [o for o in overrides if o != "resume=auto"]
        mode = mode or "auto"
    cfg = load_config(args.config, overrides)
    if args.print_config:
        print(dump_config(cfg), end="")
        return 0
    run_dir = Path(args.run_dir) if args.run_dir else None
    resume = decide_resume(run_dir, mode)
    result, test = run_experiment(
        cfg, run_dir=run_dir, resume=resume, allow_config_changes=args.allow_config_changes
    )
    if not result.is_main:  # other torchrun processes: rank 0 reports
        return 0
    print(f"run directory: {result.run_dir}")
    print(f"best {result.best_metric} = {result.best_value:.4f} at epoch {result.best_epoch}")
    if test is not None:
        print(f"\n{test.split} split ({test.checkpoint.name}):")
        print(figures_table(test.figures, test.class_names, test.task))
    sys.stdout.flush()
    return 0
