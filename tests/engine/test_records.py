"""The console line of an epoch."""

from __future__ import annotations

import pytest

from pixelwise.engine.records import epoch_line, format_rate

RECORD = {"epoch": 3, "lr": 0.01, "train/loss": 0.5, "val/loss": 0.6, "val/accuracy": 0.9}


@pytest.mark.parametrize(
    ("rate", "shown"),
    [
        (2345.6, "2346 img/s"),
        (12.34, "12.3 img/s"),
        (1.5, "1.5 img/s"),
        (0.4, "0.4 img/s (2.5 s/img)"),  # not "0 img/s", which looks like a hang
        (0.012, "0.012 img/s (83.3 s/img)"),
    ],
)
def test_slow_rates_keep_their_precision(rate, shown):
    assert format_rate(rate) == shown
    assert epoch_line({**RECORD, "train/images_per_second": rate}, "classification").endswith(
        f"lr=0.01 {shown}"
    )


def test_the_epoch_line_shows_the_task_headline():
    line = epoch_line({**RECORD, "val/miou": 0.4}, "classification")
    assert line.startswith("epoch 3: train/loss=0.5000 val/loss=0.6000 val/accuracy=0.9000")
    assert "miou" not in line
