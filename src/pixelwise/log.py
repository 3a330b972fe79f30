"""The one place pixelwise talks to a person: a logger and progress bars.

``set_quiet(True)`` (the CLI's ``--quiet``, or ``PIXELWISE_QUIET=1``) turns progress
bars off and keeps warnings, for CI and log files.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")

logger = logging.getLogger("pixelwise")
_state = {"quiet": os.environ.get("PIXELWISE_QUIET", "") not in ("", "0")}


def setup_logging(quiet: bool = False) -> None:
    _state["quiet"] = quiet or _state["quiet"]
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.WARNING if _state["quiet"] else logging.INFO)
    logger.propagate = False


def is_quiet() -> bool:
    return _state["quiet"]


def progress(iterable: Iterable[T], **kwargs: Any) -> Iterable[T]:
    """A tqdm bar unless quiet; ``leave=False`` so epochs do not pile up."""
    kwargs.setdefault("leave", False)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, disable=is_quiet(), **kwargs)
