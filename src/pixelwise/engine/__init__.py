"""The training engine: one loop for classification and segmentation.

``run_experiment(cfg)`` trains, evaluates the best checkpoint on the test split and
draws the run's plots; ``fit`` is the loop alone, ``evaluate_run`` re-evaluates a
saved run. Under ``torchrun`` every process calls ``run_experiment``; rank 0 alone
evaluates, plots and writes.
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
    if not result.is_main:
        return result, None
    plot_curves(result.history, result.run_dir / "plots" / "curves.png", cfg.task)
    test = None
    if (result.run_dir / "checkpoints" / "best.pt").is_file():
        try:
            test = evaluate_run(result.run_dir, split=cfg.data.test_split)
        except ValueError:  # the dataset has no test split
            test = evaluate_run(result.run_dir, split=cfg.data.val_split)
    if cfg.train.report:
        write_run_report(result.run_dir)
    return result, test


def write_run_report(run_dir: Path) -> Path | None:
    """``report.html`` at the end of training (``train.report``); a report that fails
    costs a warning, not the finished run."""
    from ..log import logger
    from ..viz.report import write_report

    try:
        return write_report(run_dir)
    except Exception as err:  # the weights and figures are saved already
        logger.warning(f"report.html not written: {type(err).__name__}: {err}")
        return None


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
