"""A whole experiment: fit -> evaluate -> pictures -> report.

This module sits above the engine (which computes numbers and writes checkpoints and
metrics) and ``viz`` (which draws from a run directory and arrays): it is the one
place that joins them. ``pixelwise train`` and ``pixelwise demo`` call
:func:`run_experiment`; ``pixelwise eval`` calls :func:`evaluate_and_plot` and
``pixelwise report`` :func:`write_run_report`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .config import ExperimentConfig
from .data.transforms import normalization
from .engine import EpochEnd, EvalResult, TrainResult, evaluate_run, fit
from .engine.evaluate import MissingSplitError
from .log import logger
from .run import RunDir
from .viz.colors import configured_class_colors
from .viz.learning import LearningGif
from .viz.plots import plot_confusion_matrix, plot_curves
from .viz.report import write_report


def run_experiment(
    cfg: ExperimentConfig, run_dir: Path | None = None, resume: bool = False
) -> tuple[TrainResult, EvalResult | None]:
    """Train; then (rank 0) plot the curves, evaluate the best checkpoint on the test
    split and write the report. Under ``torchrun`` every process calls it."""
    gif = LearningGifRecorder(cfg) if learning_gif_wanted(cfg) else None
    result = fit(cfg, run_dir=run_dir, resume=resume, on_epoch=gif)
    if not result.is_main:
        return result, None
    run = RunDir(result.run_dir)
    if gif is not None:
        gif.save(run)
    plot_curves(result.history, run.plots_dir / "curves.png", cfg.task)
    test = evaluate_after_training(run, cfg)
    if cfg.train.report:
        write_run_report(run, evaluate_missing=False)
    return result, test


def evaluate_after_training(run: RunDir, cfg: ExperimentConfig) -> EvalResult | None:
    """The best checkpoint on the test split. Where the dataset has no test split, the
    validation split is evaluated instead and a warning says so (those figures chose
    the checkpoint: they are not a held-out estimate). Where no ``best.pt`` exists (the
    best metric was never defined), ``last.pt`` is evaluated, with a warning."""
    which = "best"
    if not run.checkpoint_file("best").is_file():
        if not run.checkpoint_file("last").is_file():
            logger.warning(f"{run.path}: no checkpoint was written; nothing to evaluate")
            return None
        logger.warning(
            f"no best.pt: {cfg.best_metric} was never computed or never improved; "
            "evaluating last.pt instead"
        )
        which = "last"
    try:
        return evaluate_and_plot(run, cfg.data.test_split, checkpoint=which)
    except MissingSplitError:
        logger.warning(
            f"this dataset has no '{cfg.data.test_split}' split: the {which} checkpoint is "
            f"evaluated on '{cfg.data.val_split}', which chose it, so these figures are not a "
            "held-out estimate (set data.test_fraction > 0 or provide a test split)"
        )
        return evaluate_and_plot(run, cfg.data.val_split, checkpoint=which)


def evaluate_and_plot(
    run: RunDir | str | Path, split: str | None = None, **options: Any
) -> EvalResult:
    """``engine.evaluate_run`` and the row-normalised confusion-matrix picture beside its
    JSON (``plots/confusion_<name>.png``, named as the evaluation file is)."""
    run = run if isinstance(run, RunDir) else RunDir(run)
    result = evaluate_run(run, split=split, **options)
    if result.out is not None:
        plot_confusion_matrix(
            result.matrix,
            result.class_names,
            run.confusion_plot_file(result.out.stem),
            title=f"{result.title} confusion matrix",
        )
    return result


def write_run_report(run: RunDir | str | Path, evaluate_missing: bool = True) -> Path | None:
    """``report.html``; with ``evaluate_missing``, a run never evaluated is evaluated
    first (the report itself runs nothing). A report that fails costs a warning, not
    the finished run."""
    run = run if isinstance(run, RunDir) else RunDir(run)
    if (
        evaluate_missing
        and run.headline_evaluation() is None
        and run.checkpoint_file("best").is_file()
    ):
        try:
            evaluate_after_training(run, run.config())
        except Exception as err:  # noqa: BLE001 - the report is written without figures
            logger.warning(f"report: could not evaluate {run.path}: {err}")
    try:
        return write_report(run)
    except Exception as err:  # noqa: BLE001 - the weights and figures are saved already
        logger.warning(f"report.html not written: {type(err).__name__}: {err}")
        return None


# --------------------------------------------------------------------------- the GIF
def learning_gif_wanted(cfg: ExperimentConfig) -> bool:
    return cfg.task == "segmentation" and cfg.train.learning_gif


class LearningGifRecorder:
    """The ``on_epoch`` hook that records ``learning.gif``: fixed validation images
    predicted after every epoch (a resumed run shows the epochs since)."""

    def __init__(self, cfg: ExperimentConfig) -> None:
        self.cfg = cfg
        self.gif: LearningGif | None = None

    def __call__(self, end: EpochEnd) -> None:
        if self.gif is None:
            val_set = end.splits.datasets.get(self.cfg.data.val_split)
            if val_set is None:
                return
            data = self.cfg.data
            mean, std = normalization(data) if data.normalize else (None, None)
            self.gif = LearningGif(
                val_set,
                data.num_classes or end.splits.num_classes,
                num_images=self.cfg.train.gif_images,
                mean=mean,
                std=std,
                class_names=end.splits.class_names,
                colors=configured_class_colors(data, end.splits.class_names),
            )
        self.gif.record(end.model, end.epoch, miou=end.record.get("val/miou"))

    def save(self, run: RunDir) -> None:
        if self.gif is not None and self.gif.frames:
            self.gif.save(run.learning_gif)
