"""Progress: a bar for a person at a terminal, plain lines in a log, nothing when quiet."""

from __future__ import annotations

import io
import logging

import pytest

from pixelwise import log


@pytest.fixture
def logged(monkeypatch):
    """What ``pixelwise.log.logger`` writes, not quiet, with stderr not a terminal."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    monkeypatch.setitem(log._state, "quiet", False)
    monkeypatch.setattr(log, "watched", lambda: False)
    monkeypatch.setattr(log.logger, "handlers", [handler])  # only this one (a CLI test may
    level = log.logger.level  # have installed pixelwise's own stderr handler before)
    log.logger.setLevel(logging.INFO)
    yield stream
    log.logger.setLevel(level)


def test_a_redirected_log_gets_plain_lines_not_bar_frames(logged, monkeypatch, capsys):
    monkeypatch.setattr(log, "LINE_INTERVAL_S", 0.0)  # a line per step: every interval passed
    bar = log.progress(range(4), desc="epoch 1/3")
    seen = []
    for step in bar:
        seen.append(step)
        bar.set_postfix(loss="0.5000", speed="12 img/s")
    assert seen == [0, 1, 2, 3]  # nothing lost
    err = capsys.readouterr().err
    assert "\r" not in err and err == ""  # no carriage-return frames on stderr
    lines = logged.getvalue().splitlines()
    assert lines == [f"epoch 1/3: {n}/4 loss=0.5000 speed=12 img/s" for n in (1, 2, 3)]


def test_a_fast_loop_in_a_log_writes_no_line(logged):
    assert list(log.progress(range(50), desc="eval")) == list(range(50))
    assert logged.getvalue() == ""  # the epoch line says the rest


def test_quiet_writes_nothing(logged, monkeypatch, capsys):
    monkeypatch.setitem(log._state, "quiet", True)
    monkeypatch.setattr(log, "LINE_INTERVAL_S", 0.0)
    bar = log.progress(iter(range(3)), desc="eval")
    for _ in bar:
        bar.set_postfix(loss="1")
    assert logged.getvalue() == "" and capsys.readouterr().err == ""


def test_a_terminal_gets_a_bar(monkeypatch):
    monkeypatch.setitem(log._state, "quiet", False)
    monkeypatch.setattr(log, "watched", lambda: True)
    bar = log.progress(range(3), desc="eval", file=io.StringIO())
    assert hasattr(bar, "n") and list(bar) == [0, 1, 2]  # a tqdm bar
