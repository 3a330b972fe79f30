"""``pixelwise report RUN_DIR``: write the run's self-contained HTML report."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="write a run's HTML report",
        description="Write RUN_DIR/report.html: one file with every picture embedded (opens "
        "without a server): summary and config, curves, final metrics with per-class tables, "
        "the confusion matrix, sample predictions and the model's complexity. A run that was "
        "never evaluated is evaluated first.",
    )
    p.add_argument("run_dir", help="a run directory (or a checkpoint inside one)")
    p.add_argument("--output", help="where to write the page (default RUN_DIR/report.html)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import UserError
    from ..experiment import write_run_report
    from ..run import RunDir

    run = RunDir(args.run_dir)
    if args.output:
        from ..viz.report import write_report

        path = write_report(run, args.output)
    else:
        path = write_run_report(run)
    if path is None:
        raise UserError(f"{run.path}: the report could not be written (see the warning above)")
    print(f"report: {path}")
    return 0
