"""The ``pixelwise`` command: one module per subcommand, each with ``add_parser``.

A user's mistake (``pixelwise.errors.UserError``: a bad config key, a missing file,
an incompatible checkpoint, a broken image) is printed as one line and exits with
status 2 (``PIXELWISE_DEBUG=1`` prints its traceback too); anything else is a bug and
keeps its traceback. Command modules import the library inside their ``run``
function (the one place pixelwise imports inside functions besides optional
dependencies), so that ``pixelwise --help`` and argument errors answer without
importing torch. Global flags (``-q``) are accepted before or after the
subcommand, and ``key=value`` overrides after options as well as before them.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback

from .. import __version__
from ..errors import UserError
from ..log import setup_logging
from . import analyze, data, demo, evaluate, export, models, predict, report, train, tune

COMMANDS = [train, evaluate, predict, analyze, export, models, data, demo, report, tune]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pixelwise",
        description="Image classification and semantic segmentation: train, evaluate, understand, use.",
    )
    parser.add_argument("--version", action="version", version=f"pixelwise {__version__}")
    add_global_flags(parser, default=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    _add_to_subcommands(parser)
    return parser


def add_global_flags(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=default,
        help="no progress bars, warnings only",
    )


def _add_to_subcommands(parser: argparse.ArgumentParser) -> None:
    """Every (nested) subcommand accepts the global flags too. Their default there is
    SUPPRESS, so that a subcommand without ``-q`` keeps the value parsed before it."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for subparser in {id(p): p for p in action.choices.values()}.values():
                add_global_flags(subparser, default=argparse.SUPPRESS)
                _add_to_subcommands(subparser)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """argparse reads a command's positional arguments in one go, so ``key=value``
    words after an option (``train digits --run-dir r train.epochs=1``) are left over:
    they join the command's overrides, in order."""
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:
        if not hasattr(args, "overrides") or any(e.startswith("-") or "=" not in e for e in extras):
            parser.error(f"unrecognized arguments: {' '.join(extras)}")
        args.overrides = [*args.overrides, *extras]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
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
