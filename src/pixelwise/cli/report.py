"""``pixelwise report RUN_DIR``: write the run's self-contained HTML report."""

from __future__ import annotations

import argparse

from ._common import guarded


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="write a run's HTML report",
        description="Write RUN_DIR/report.html: one file with every picture embedded (opens "
        "without a server): summary and config, curves, final metrics with per-class tables, "
        "the confusion matrix, sample predictions and the model's complexity.",
    )
    p.add_argument("run_dir", help="a run directory (or a checkpoint inside one)")
    p.add_argument("--output", help="where to write the page (default RUN_DIR/report.html)")
    p.set_defaults(func=run)


@guarded
def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..engine.evaluate import resolve_run
    from ..viz.report import write_report

    target = Path(args.run_dir)
    run_dir = resolve_run(target)[0] if target.is_file() else target
    path = write_report(run_dir, args.output)
    print(f"report: {path}")
    return 0
