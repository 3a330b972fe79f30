"""The training engine: one loop for classification and segmentation.

``run_experiment(cfg)`` trains, evaluates the best checkpoint on the test split and
draws the run's plots; ``fit`` is the loop alone, ``evaluate_run`` re-evaluates a
saved run.
"""

from __future__ import annotations

from pathlib import Path

from ..config import ExperimentConfig
from .evaluate import EvalResult, evaluate, evaluate_run, resolve_run
from .trainer import TrainResult, fit, read_metrics


def run_experiment(
    cfg: ExperimentConfig, run_dir: Path | None = None, resume: bool = False
) -> tuple[TrainResult, EvalResult | None]:
    """Train, then evaluate ``best`` on the test split (where there is one) and plot."""
    from ..viz.plots import plot_curves

    result = fit(cfg, run_dir=run_dir, resume=resume)
    plot_curves(result.history, result.run_dir / "plots" / "curves.png")
    test = None
    if (result.run_dir / "checkpoints" / "best.pt").is_file():
        try:
            test = evaluate_run(result.run_dir, split=cfg.data.test_split)
        except ValueError:  # the dataset has no test split
            test = evaluate_run(result.run_dir, split=cfg.data.val_split)
    return result, test


__all__ = [
    "EvalResult",
    "TrainResult",
    "evaluate",
    "evaluate_run",
    "fit",
    "read_metrics",
    "resolve_run",
    "run_experiment",
]
