"""``pixelwise eval RUN_DIR_OR_CHECKPOINT [--split test] [--data key=value ...] [--tta]
[--sliding-window [--overlap F]]``"""

from __future__ import annotations

import argparse

from ._common import figures_table


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="re-evaluate a saved run's checkpoint",
        description="Evaluate a run's best checkpoint (or a given checkpoint) on a split of its "
        "own dataset, print every figure (per class too), and write eval/<name>.json and the "
        "row-normalised confusion-matrix plot plots/confusion_<name>.png, where <name> says "
        "what produced them: <split>[-<checkpoint>][-tta][-sliding] (the best checkpoint's "
        "plain evaluation is eval/<split>.json), so no evaluation overwrites another. "
        "Definitions of every figure: docs/metrics.md.",
    )
    p.add_argument("path", help="run directory, or a checkpoint file inside one")
    p.add_argument(
        "--split", help="split to evaluate (default: the run's data.test_split, usually test)"
    )
    p.add_argument(
        "--checkpoint",
        default=None,
        choices=["best", "last", "ema", "averaged"],
        help="which checkpoint of a run directory (default: best; last where the run's "
        "validation split is its test split, since best.pt was chosen on it)",
    )
    p.add_argument(
        "--data",
        nargs="*",
        default=[],
        metavar="key=value",
        help="data overrides, e.g. root=/other/place eval_batch_size=16",
    )
    p.add_argument(
        "--tta",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="average the prediction of each image and its horizontal mirror "
        "(default: the run's eval.tta_hflip)",
    )
    p.add_argument(
        "--sliding-window",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="segmentation: predict each image at its own size in overlapping windows of "
        "the training size (default: the run's eval.sliding_window)",
    )
    p.add_argument(
        "--overlap",
        type=float,
        default=None,
        metavar="F",
        help="fraction of a window shared with its neighbour, in [0, 1) "
        "(default: the run's eval.window_overlap)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..experiment import evaluate_and_plot
    from ..run import RunDir

    result = evaluate_and_plot(
        args.path,
        args.split,
        overrides=args.data,
        checkpoint=args.checkpoint,
        tta_hflip=args.tta,
        sliding_window=args.sliding_window,
        window_overlap=args.overlap,
    )
    print(f"{result.run_dir} · {result.title}")
    print(figures_table(result.figures, result.class_names, result.task))
    if result.out is not None:
        print(f"\nwritten: {result.out}")
        if result.matrix.numel():  # multilabel has no confusion matrix
            print(f"         {RunDir(result.run_dir).confusion_plot_file(result.out.stem)}")
    return 0
