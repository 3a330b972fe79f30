"""The ``pixelwise`` command: one module per subcommand, each with ``add_parser``.

A user's mistake (``pixelwise.errors.UserError``: a bad config key, a missing file,
an incompatible checkpoint, a broken image) is printed as one line and exits with
status 2 (``PIXELWISE_DEBUG=1`` prints its traceback too); anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback

from .. import __version__
from ..errors import UserError
from ..log import setup_logging
from . import analyze, data, demo, evaluate, export, models, predict, report, train

COMMANDS = [train, evaluate, predict, analyze, export, models, data, demo, report]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pixelwise",
        description="Image classification and semantic segmentation: train, evaluate, understand, use.",
    )
    parser.add_argument("--version", action="version", version=f"pixelwise {__version__}")
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bars, warnings only"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(quiet=args.quiet)
    try:
        return int(args.func(args) or 0)
    except UserError as err:
        if os.environ.get("PIXELWISE_DEBUG", "") not in ("", "0"):
            traceback.print_exc()
        print(f"pixelwise {args.command}: error: {first_line(err)}", file=sys.stderr)
        return 2


def first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


if __name__ == "__main__":
    sys.exit(main())
