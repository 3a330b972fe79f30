"""``pixelwise eval RUN_DIR_OR_CHECKPOINT [--split test] [--data key=value ...]``"""

from __future__ import annotations

import argparse

from ._common import figures_table, guarded


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="re-evaluate a saved run's checkpoint",
        description="Evaluate a run's best checkpoint (or a given checkpoint) on a split of its own "
        "dataset, print every figure, and write eval/<split>.json and the confusion-matrix plot.",
    )
    p.add_argument("path", help="run directory or checkpoint file")
    p.add_argument("--split", default="test", help="split to evaluate (default: test)")
    p.add_argument(
        "--checkpoint",
        default="best",
        choices=["best", "last"],
        help="which checkpoint of a run directory",
    )
    p.add_argument(
        "--data",
        nargs="*",
        default=[],
        metavar="key=value",
        help="data overrides, e.g. root=/other/place",
    )
    p.set_defaults(func=run)


@guarded
def run(args: argparse.Namespace) -> int:
    from ..engine import evaluate_run

    result = evaluate_run(
        args.path, split=args.split, overrides=args.data, checkpoint=args.checkpoint
    )
    print(f"{result.run_dir} · split {result.split} · {result.checkpoint.name}")
    print(figures_table(result.figures, result.class_names))
    print(f"\nwritten: {result.run_dir / 'eval' / (result.split + '.json')}")
    return 0
