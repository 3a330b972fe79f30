"""``pixelwise train CONFIG [key=value ...] [--run-dir RUN] [--resume [auto]] [--print-config] [--dry-run]``"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ._common import figures_table

if TYPE_CHECKING:
    from ..config import ExperimentConfig


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
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="build the data and the model, print split sizes, classes, parameters, MACs "
        "and steps per epoch, and exit: nothing is trained or written",
    )
    p.set_defaults(func=run)


def dry_run(cfg: ExperimentConfig) -> None:
    """What a training run of ``cfg`` would work with, without training or writing: the
    splits (carved in a temporary folder, as a run carves them into ``splits.json``),
    the class count, the model's parameters and MACs per training image, the steps."""
    import tempfile

    from ..analysis import complexity, format_count
    from ..data import build_datasets
    from ..engine.build import build_model

    with tempfile.TemporaryDirectory(prefix="pixelwise-dry-run-") as scratch:
        splits = build_datasets(cfg, Path(scratch))
    num_classes = cfg.data.num_classes or splits.num_classes
    sizes = ", ".join(f"{name} {len(data)}" for name, data in splits.datasets.items())
    print(f"config: {cfg.name} ({cfg.task}, data.format={cfg.data.format})")
    print(f"data: {sizes} images; {num_classes} classes")
    model = build_model(cfg, num_classes)
    size = (cfg.data.in_channels, *(cfg.data.crop_size or cfg.data.image_size))
    cost = complexity(model, size)
    print(
        f"model: {cfg.model.name}, {format_count(cost.params)} parameters, "
        f"{format_count(cost.macs)} MACs per {'x'.join(map(str, size))} image"
    )
    batches = batches_per_epoch(len(splits.datasets[cfg.data.train_split]), cfg.data.batch_size)
    steps = math.ceil(batches / cfg.optim.accumulate_steps)
    print(
        f"steps per epoch: {batches} batches of {cfg.data.batch_size} ({steps} optimiser "
        f"steps); {cfg.train.epochs} epochs: {steps * cfg.train.epochs} steps"
    )
    print("dry run: nothing trained, no run directory written")


def batches_per_epoch(samples: int, batch_size: int) -> int:
    """Training batches of one epoch: ``data.build_loader`` drops a last incomplete batch
    unless the whole split fits in one."""
    return samples // batch_size if samples > batch_size else 1


def run(args: argparse.Namespace) -> int:
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
    if args.dry_run:
        dry_run(cfg)
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
