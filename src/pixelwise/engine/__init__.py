"""The training engine: one loop for classification and segmentation.

``fit`` trains a config into a run directory, ``evaluate`` is one pass over a split
into a confusion matrix, ``evaluate_run`` re-evaluates a saved run. The engine
computes numbers and writes checkpoints and metrics; it draws nothing
(``pixelwise.experiment`` adds the pictures and the report).
"""

from __future__ import annotations

from .evaluate import EvalResult, evaluate, evaluate_run
from .trainer import EpochEnd, TrainResult, fit

__all__ = ["EpochEnd", "EvalResult", "TrainResult", "evaluate", "evaluate_run", "fit"]
