"""The one place pixelwise talks to a person: a logger and progress reports.

``set_quiet(True)`` (the CLI's ``--quiet``, or ``PIXELWISE_QUIET=1``) turns progress
off and keeps warnings, for CI and log files.

Progress is a tqdm bar where someone watches it (stderr is a terminal, or a Jupyter
notebook), and plain lines elsewhere: a bar redrawn with carriage returns turns a
redirected log into one long line that ``grep`` calls binary. In a log, a loop that
runs longer than ``LINE_INTERVAL_S`` says where it is once per interval (``epoch
3/20: 400/1250 loss=0.4211 ...``); the trainer's line per epoch says the rest.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, Generic, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")

logger = logging.getLogger("pixelwise")
_state = {"quiet": os.environ.get("PIXELWISE_QUIET", "") not in ("", "0")}

LINE_INTERVAL_S = 30.0
"""Seconds between two progress lines in a log (not a terminal): timm's and mmseg's habit
of one line per interval, without a line per step of a fast epoch."""


class CurrentStderrHandler(logging.StreamHandler):
    """A handler that writes to whatever ``sys.stderr`` is when a record is emitted, not
    the stream it saw when created: notebooks and test runners replace (and close)
    ``sys.stderr``, and a handler holding an old one would write into a closed file."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:  # StreamHandler.__init__ sets it: ignored
        pass


def setup_logging(quiet: bool = False) -> None:
    _state["quiet"] = quiet or _state["quiet"]
    if not logger.handlers:
        handler = CurrentStderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.WARNING if _state["quiet"] else logging.INFO)
    logger.propagate = False


def is_quiet() -> bool:
    return _state["quiet"]


def watched() -> bool:
    """Whether a person watches the progress: stderr is a terminal, or tqdm draws
    notebook widgets (``tqdm.auto`` inside Jupyter)."""
    in_notebook = any(cls.__module__ == "tqdm.notebook" for cls in tqdm.__mro__)
    return in_notebook or sys.stderr.isatty()


class LineProgress(Generic[T]):
    """Iterates like a tqdm bar, but writes a plain line (to ``logger``) at most once
    per ``interval`` seconds, and none for the last step: the caller's summary follows.
    ``set_postfix`` takes what tqdm's takes and appends it to the next line."""

    def __init__(
        self, iterable: Iterable[T], desc: str = "", total: int | None = None, interval: float = 0
    ) -> None:
        self.iterable = iterable
        self.desc = desc
        self.total = total if total is not None else _length(iterable)
        self.interval = interval
        self.postfix: dict[str, Any] = {}

    def set_postfix(self, **values: Any) -> None:
        self.postfix = values

    def __len__(self) -> int:
        return self.total if self.total is not None else 0

    def __iter__(self) -> Iterator[T]:
        last = time.monotonic()
        for done, item in enumerate(self.iterable, start=1):
            yield item
            now = time.monotonic()
            if now - last >= self.interval and done != self.total:
                logger.info(self.line(done))
                last = now

    def line(self, done: int) -> str:
        where = f"{done}/{self.total}" if self.total is not None else str(done)
        tail = "".join(f" {k}={v}" for k, v in self.postfix.items())
        return f"{self.desc}: {where}{tail}" if self.desc else where + tail


def _length(iterable: Iterable[Any]) -> int | None:
    try:
        return len(iterable)  # type: ignore[arg-type]
    except TypeError:
        return None


def progress(iterable: Iterable[T], **kwargs: Any) -> Iterable[T]:
    """A tqdm bar where a person watches (``leave=False`` so epochs do not pile up), a
    line every ``LINE_INTERVAL_S`` seconds in a log, nothing when quiet."""
    if is_quiet():
        return tqdm(iterable, disable=True, **kwargs)
    if not watched():
        return LineProgress(iterable, kwargs.get("desc", ""), kwargs.get("total"), LINE_INTERVAL_S)
    kwargs.setdefault("leave", False)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kwargs)
