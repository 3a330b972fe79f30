"""``pixelwise predict``: predict from a checkpoint."""

from __future__ import annotations

import argparse

from ._common import not_available


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="predict from a checkpoint",
        description="predict from a checkpoint (not available yet)",
    )
    p.set_defaults(func=not_available("predict", "issue 9"))
