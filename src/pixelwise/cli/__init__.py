"""The ``pixelwise`` command: one module per subcommand, each with ``add_parser``.

Errors a user can act on (bad config keys, missing files, incompatible checkpoints)
are printed as one line and exit with status 2; anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

import argparse
import sys

from .. import __version__
from ..log import setup_logging
from . import analyze, data, demo, evaluate, export, models, predict, report, train
from ._common import UserError

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
        print(f"pixelwise {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
