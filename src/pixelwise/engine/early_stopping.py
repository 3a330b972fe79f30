"""Early stopping and best-checkpoint selection on any logged figure."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..errors import UserError


def improved(value: float, best: float | None, mode: str, min_delta: float = 0.0) -> bool:
    """``value`` beats ``best`` by more than ``min_delta`` (``max``: larger is better)."""
    if value is None or math.isnan(value):
        return False
    if best is None or math.isnan(best):
        return True
    return value > best + min_delta if mode == "max" else value < best - min_delta


def figure(record: dict[str, Any], name: str) -> float | None:
    """``record[name]``; None where the figure's split was not evaluated that epoch
    (``train.val_every``), an error naming the valid figures where it never will be."""
    if name in record:
        return record[name]
    prefix = name.split("/")[0] + "/"
    logged = sorted(k for k, v in record.items() if k.startswith(prefix) and isinstance(v, float))
    if logged:
        raise UserError(f"metric {name!r} is not logged; {prefix} figures are: {', '.join(logged)}")
    return None


@dataclass
class EarlyStopping:
    """Stop after ``patience`` evaluated epochs without an improvement of ``min_delta``."""

    metric: str
    mode: str
    patience: int
    min_delta: float = 0.0
    best: float | None = None
    stale: int = 0

    def update(self, record: dict[str, Any]) -> bool:
        """Feed one epoch's record; True when the run should stop."""
        value = figure(record, self.metric)
        if value is None:
            return False
        if improved(value, self.best, self.mode, self.min_delta):
            self.best, self.stale = value, 0
        else:
            self.stale += 1
        return self.stale >= self.patience
