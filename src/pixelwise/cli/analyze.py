"""``pixelwise analyze``: per-layer complexity and receptive fields."""

from __future__ import annotations

import argparse

from ._common import not_available


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "analyze",
        help="per-layer complexity and receptive fields",
        description="per-layer complexity and receptive fields (not available yet)",
    )
    p.set_defaults(func=not_available("analyze", "issue 8"))
