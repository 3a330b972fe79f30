"""``pixelwise data``: check datasets and compute statistics."""

from __future__ import annotations

import argparse

from ._common import not_available


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "data",
        help="check datasets and compute statistics",
        description="check datasets and compute statistics (not available yet)",
    )
    p.set_defaults(func=not_available("data", "issue 5"))
