"""The learning-rate range test: exponential rates, smoothing, divergence, a suggestion."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from pixelwise.engine.lr_finder import DIVERGE_FACTOR, exponential_lrs, find_lr, suggest
from pixelwise.errors import UserError


def test_rates_grow_exponentially_over_the_range():
    lrs = exponential_lrs(1e-4, 1.0, 5)
    assert lrs == pytest.approx([1e-4, 1e-3, 1e-2, 1e-1, 1.0])
    with pytest.raises(UserError, match="0 < --start < --end"):
        exponential_lrs(1.0, 1e-3, 10)


def test_the_suggestion_is_the_steepest_descent_before_the_minimum():
    lrs = exponential_lrs(1e-5, 1.0, 11)
    smoothed = [2.0, 2.0, 1.9, 1.5, 0.8, 0.6, 0.5, 0.45, 0.6, 1.5, 4.0]
    # the central slope at 1.5 (from 1.9 to 0.8) is the steepest, at lr 10^-3.5
    assert suggest(lrs, smoothed) == (pytest.approx(10**-3.5), "steepest descent")
    assert suggest(lrs[:3], [1.0, 0.9, 3.0]) == (pytest.approx(1e-5 * 10**0.5 / 10), "minimum / 10")


def test_range_test_on_digits_suggests_a_rate_inside_the_range(small_digits):
    cfg = small_digits("data.num_workers=0")
    result = find_lr(cfg, start=1e-5, end=100.0, steps=40)
    assert math.isfinite(result.suggestion)
    assert 1e-5 <= result.suggestion <= 100.0
    assert result.method == "steepest descent"
    assert result.diverged  # a rate of 100 blows plain SGD up before the end
    assert len(result.lrs) < 40
    assert result.smoothed[-1] > DIVERGE_FACTOR * min(result.smoothed) or not math.isfinite(
        result.losses[-1]
    )
    assert min(result.smoothed) < result.smoothed[0]  # it learned before diverging
    assert not Path(cfg.output_dir).exists()  # no run directory
