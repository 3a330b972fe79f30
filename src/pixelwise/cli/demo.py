"""``pixelwise demo``: the quick start, on scikit-learn's digits (no download)."""

from __future__ import annotations

import argparse

from ._common import figures_table


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="train and evaluate a small CNN on the embedded digits",
        description="Train a small CNN on scikit-learn's handwritten digits, evaluate it on the "
        "held-out test split, and write the figures, curves and confusion matrix into runs/.",
    )
    p.add_argument(
        "overrides", nargs="*", metavar="key=value", help="overrides of the digits config"
    )
    p.add_argument(
        "--output-dir", default="runs", help="parent of the run directory (default: runs)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import time

    from ..config import load_config
    from ..experiment import run_experiment

    started = time.perf_counter()
    cfg = load_config("digits", [f"output_dir={args.output_dir}", *args.overrides])
    result, test = run_experiment(cfg)
    elapsed = time.perf_counter() - started
    assert test is not None
    print(f"run directory: {result.run_dir}  ({elapsed:.0f} s)")
    print(f"test split ({len(test.class_names)} classes):")
    print(figures_table(test.figures, test.class_names, test.task))
    print(f"\ntest accuracy: {test.figures['accuracy']:.2%}")
    plots = sorted(p.name for p in (result.run_dir / "plots").glob("*.png"))
    print(f"plots: {', '.join(plots)} in {result.run_dir / 'plots'}")
    if (result.run_dir / "report.html").is_file():
        print(f"report: {result.run_dir / 'report.html'}")
    return 0
