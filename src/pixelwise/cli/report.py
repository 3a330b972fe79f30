"""``pixelwise report``: write a run's HTML report."""

from __future__ import annotations

import argparse

from ._common import not_available


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="write a run's HTML report",
        description="write a run's HTML report (not available yet)",
    )
    p.set_defaults(func=not_available("report", "issue 8"))
