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

import torch
from torch import nn
from torch.utils.data import Dataset

from .config import ExperimentConfig, load_config
from .data.transforms import normalization
from .engine import EpochEnd, EvalResult, TrainResult, evaluate_run
from .engine import fit as train
from .engine.evaluate import MissingSplitError, evaluate_in_memory
from .engine.trainer import EpochHook, Pieces, user_splits
from .errors import UserError
from .log import logger
from .run import RunDir
from .viz.colors import configured_class_colors
from .viz.learning import LearningGif
from .viz.plots import plot_confusion_matrix, plot_curves
from .viz.report import write_report


def run_experiment(
    cfg: ExperimentConfig,
    run_dir: Path | None = None,
    resume: bool = False,
    allow_config_changes: bool = False,
    on_epoch: EpochHook | None = None,
    pieces: Pieces | None = None,
) -> tuple[TrainResult, EvalResult | None]:
    """Train; then (rank 0) plot the curves, evaluate the run's checkpoint
    (``RunDir.default_checkpoint``: the best) on the test split and write the report.
    ``on_epoch`` is called after each epoch, as ``fit`` calls it; ``pieces`` are a user's
    own model, datasets and loss (``pixelwise.fit``). Under ``torchrun`` every process
    calls it."""
    gif = LearningGifRecorder(cfg) if learning_gif_wanted(cfg) else None
    hooks = [hook for hook in (gif, on_epoch) if hook is not None]

    def after_epoch(end: EpochEnd) -> None:
        for hook in hooks:
            hook(end)

    result = train(
        cfg,
        run_dir=run_dir,
        resume=resume,
        on_epoch=after_epoch if hooks else None,
        allow_config_changes=allow_config_changes,
        pieces=pieces,
    )
    if not result.is_main:
        return result, None
    run = RunDir(result.run_dir)
    if gif is not None:
        gif.save(run)
    with run.writing(run.plots_dir / "curves.png"):
        plot_curves(result.history, run.plots_dir / "curves.png", cfg.task)
    if pieces is not None and (pieces.model is not None or pieces.has_data):
        test = evaluate_pieces(run, cfg, pieces)
    else:
        test = evaluate_after_training(run, cfg)
    if cfg.train.average_best:
        averaged = evaluate_averaged(run, cfg)
        if averaged is not None and test is not None:
            logger.info(
                f"the {cfg.train.keep_best} best checkpoints averaged: {averaged.title} "
                f"{headline_of(averaged)} ({run.default_checkpoint()} alone: "
                f"{headline_of(test)})"
            )
    if cfg.train.report:
        write_run_report(run, evaluate_missing=False)
    return result, test


def evaluate_averaged(run: RunDir, cfg: ExperimentConfig) -> EvalResult | None:
    """``checkpoints/averaged.pt`` (the ``train.keep_best`` best checkpoints' weights
    averaged) evaluated as the best checkpoint is: ``eval/<split>-averaged.json``."""
    run.average_top_checkpoints()
    try:
        return evaluate_and_plot(run, cfg.data.test_split, checkpoint="averaged")
    except MissingSplitError:
        return evaluate_and_plot(run, cfg.data.val_split, checkpoint="averaged")


def headline_of(result: EvalResult) -> str:
    key = {"classification": "accuracy", "multilabel": "map"}.get(result.task, "miou")
    return f"{key} {result.figures.get(key, float('nan')):.4f}"


def fit(
    cfg: ExperimentConfig | str | Path | None = None,
    *,
    model: nn.Module | None = None,
    train_data: Dataset | None = None,
    val_data: Dataset | None = None,
    test_data: Dataset | None = None,
    loss: nn.Module | None = None,
    class_names: list[str] | None = None,
    overrides: list[str] | None = None,
    run_dir: Path | None = None,
    resume: bool = False,
) -> tuple[TrainResult, EvalResult | None]:
    """``pixelwise.fit``: the pixelwise loop on your own pieces, the config filling the
    rest (precision, EMA, schedules, resume, DDP, metrics, checkpoints, report).

    ``cfg`` is a config, a bundled name or YAML path, or None: then the task, the input
    channels and size come from ``train_data``'s first item (``data.format: python``).
    ``model`` is any ``nn.Module``; the datasets return ``(image, target)`` tensors ready
    for it; ``loss`` is ``(logits, targets) -> scalar``. Returns ``run_experiment``'s
    ``(TrainResult, EvalResult or None)``.
    """
    if not isinstance(cfg, ExperimentConfig):
        extra = list(overrides or [])
        if cfg is None and train_data is not None:
            image, target = train_data[0]
            task = "segmentation" if torch.as_tensor(target).dim() else "classification"
            extra = [
                f"task={task}",
                "data.format=python",
                f"data.in_channels={image.shape[0]}",
                f"data.image_size=[{image.shape[-2]}, {image.shape[-1]}]",
                *extra,
            ]
        cfg = load_config(cfg, extra)
    elif overrides:
        raise UserError("overrides go with a config name or path, not with a built config")
    pieces = Pieces(model, train_data, val_data, test_data, loss, class_names)
    return run_experiment(cfg, run_dir=run_dir, resume=resume, pieces=pieces)


def evaluate_after_training(run: RunDir, cfg: ExperimentConfig) -> EvalResult | None:
    """The run's checkpoint (``RunDir.default_checkpoint``) on the test split. Where the
    dataset has no test split, the validation split is evaluated instead and a warning
    says so (those figures chose the checkpoint: they are not a held-out estimate).
    Where no ``best.pt`` exists (the best metric was never defined), ``last.pt`` is
    evaluated, with a warning. Where the validation split is the test split itself
    (``cifar10_fast`` reports test accuracy each epoch), ``best.pt`` was chosen on the
    test figures: ``last.pt`` is evaluated instead, which nothing chose, and a warning
    says so."""
    which = run.default_checkpoint()
    chosen_on_test = warn_if_chosen_on_test(run, cfg, which)
    if not chosen_on_test and not run.checkpoint_file("best").is_file():
        if not run.checkpoint_file("last").is_file():
            logger.warning(f"{run.path}: no checkpoint was written; nothing to evaluate")
            return None
        logger.warning(
            f"no best.pt: {cfg.best_metric} was never computed or never improved; "
            "evaluating last.pt instead"
        )  # default_checkpoint already chose last.pt
    try:
        return evaluate_and_plot(run, cfg.data.test_split, checkpoint=which)
    except MissingSplitError:
        pass
    try:
        result = evaluate_and_plot(run, cfg.data.val_split, checkpoint=which)
    except MissingSplitError:
        logger.warning(
            f"this dataset has neither a '{cfg.data.test_split}' nor a "
            f"'{cfg.data.val_split}' split: the trained model was not evaluated"
        )
        return None
    logger.warning(
        f"this dataset has no '{cfg.data.test_split}' split: the {which} checkpoint is "
        f"evaluated on '{cfg.data.val_split}', which chose it, so these figures are not a "
        "held-out estimate (set data.test_fraction > 0 or provide a test split)"
    )
    return result


def warn_if_chosen_on_test(run: RunDir, cfg: ExperimentConfig, which: str) -> bool:
    """Says once why the test split's figures are of ``which``, not ``best.pt``, where
    ``best.pt`` was chosen on them; True when it said so."""
    if not run.chosen_on_test() or which == "best":
        return False
    stopped = " (early stopping on it chose the last epoch, though)"
    logger.warning(
        f"data.val_split is the test split '{cfg.data.test_split}': best.pt was chosen "
        f"on it, so the final evaluation is of {which}.pt"
        + (stopped if cfg.train.early_stopping.enabled else "")
        + "; do not tune on these figures"
    )
    if cfg.train.average_best:
        logger.warning(
            "train.average_best averages the checkpoints ranked on the test split: "
            "its figures on that split are not held-out either"
        )
    return True


def evaluate_pieces(run: RunDir, cfg: ExperimentConfig, pieces: Pieces) -> EvalResult | None:
    """The run's own checkpoint (``RunDir.default_checkpoint``), in the user's own model
    object, on the test data (the given ``test_data``, else the config's test split); a
    warning where there is none."""
    splits = user_splits(cfg, pieces) if pieces.has_data else run.splits()
    split = cfg.data.test_split if cfg.data.test_split in splits.datasets else cfg.data.val_split
    if split not in splits.datasets:
        logger.warning("no test or validation data: the trained model was not evaluated")
        return None
    if split != cfg.data.test_split:
        logger.warning(
            f"no test data: the best checkpoint is evaluated on '{split}', which chose it"
        )
    which = run.default_checkpoint()
    if split == cfg.data.test_split:
        warn_if_chosen_on_test(run, cfg, which)
    model = pieces.model if pieces.model is not None else run.load_model(which)[0]
    result = evaluate_in_memory(
        run, cfg, model, splits.datasets[split], split, splits.class_names, pieces.loss, which
    )
    if not result.matrix.numel():  # multilabel: no confusion matrix
        return result
    picture = run.confusion_plot_file(result.out.stem)
    with run.writing(picture):
        plot_confusion_matrix(
            result.matrix, result.class_names, picture, title=f"{result.title} confusion matrix"
        )
    return result


def evaluate_and_plot(
    run: RunDir | str | Path, split: str | None = None, **options: Any
) -> EvalResult:
    """``engine.evaluate_run`` and the row-normalised confusion-matrix picture beside its
    JSON (``plots/confusion_<name>.png``, named as the evaluation file is; none for a
    multi-label run)."""
    run = run if isinstance(run, RunDir) else RunDir(run)
    result = evaluate_run(run, split=split, **options)
    if result.out is not None and result.matrix.numel():  # multilabel has no matrix
        picture = run.confusion_plot_file(result.out.stem)
        with run.writing(picture):
            plot_confusion_matrix(
                result.matrix, result.class_names, picture, title=f"{result.title} confusion matrix"
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
            with run.writing(run.learning_gif):
                self.gif.save(run.learning_gif)
