"""Evaluation: one pass over a split into one confusion matrix.

``evaluate`` is what the training loop calls every epoch (a plain forward pass, or a
``predict`` function); ``evaluate_run`` re-evaluates a saved run's checkpoint
(``RunDir.load_model``) with the run's own config and data split, optionally with
flip test-time augmentation and sliding windows (``pixelwise.tta``), and writes its
figures to ``eval/`` (``RunDir.eval_file``). It draws nothing: the pictures are
``pixelwise.experiment``'s. Under ``torch.distributed`` give each process an unpadded
shard (``engine.distributed.ShardSampler``) and sum the matrices with
``ConfusionMatrix.reduce``. A ``task: multilabel`` run is evaluated at the threshold
its model card keeps (``MultiLabelMetrics``); it has no confusion matrix.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..config import ConfigError, ExperimentConfig
from ..data import DataSplits, build_datasets, build_loader
from ..data.folders import label_matrix
from ..data.io import DataError
from ..data.stats import resolve_class_weights
from ..log import progress
from ..losses import build_loss, positive_weights
from ..metrics import ConfusionMatrix, MultiLabelMetrics
from ..models.base import split_output
from ..run import RunDir, json_safe
from ..runtime import select_device
from ..tta import make_predictor
from .precision import Precision


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    num_classes: int,
    device: torch.device,
    ignore_index: int = 255,
    loss_fn: nn.Module | None = None,
    predict: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None,
    topk: int = 5,
    desc: str = "eval",
    metrics: MultiLabelMetrics | None = None,
) -> tuple[float, Any]:
    """Mean loss per sample (NaN without ``loss_fn``) and the split's confusion matrix
    (or, given, the ``metrics`` accumulator fed instead: multi-label).

    ``predict(model, images) -> logits`` replaces a plain forward pass (test-time
    augmentation, sliding windows: ``tta.make_predictor``). Losses and counts stay on
    ``device`` until the end: no host sync per batch.
    """
    was_training = model.training
    model.eval()
    matrix: Any = metrics or ConfusionMatrix(num_classes, ignore_index=ignore_index, topk=topk)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    count = 0
    for images, targets in progress(loader, desc=desc):
        images = images.to(device, non_blocking=True)
        targets = targets.to(device, non_blocking=True)
        logits = predict(model, images) if predict else split_output(model(images))[0]
        if loss_fn is not None:
            loss_sum += loss_fn(logits.float(), targets).double() * images.shape[0]
        count += images.shape[0]
        matrix.update(logits, targets)
    model.train(was_training)
    loss = float(loss_sum) / max(count, 1) if loss_fn is not None else math.nan
    return loss, matrix


# --------------------------------------------------------------------------- a saved run
class MissingSplitError(DataError):
    """The dataset has no split of the name asked for."""


@dataclass
class EvalResult:
    run_dir: Path
    split: str
    figures: dict[str, Any]
    matrix: torch.Tensor
    class_names: list[str]
    loss: float
    checkpoint: Path
    task: str = "classification"
    inference: dict[str, Any] = field(default_factory=dict)  # how logits were predicted
    epoch: int | None = None  # of the checkpoint
    out: Path | None = None  # the eval/*.json written, if any

    @property
    def title(self) -> str:
        """``test (last.pt, tta_hflip)``: what produced these figures."""
        how = [self.checkpoint.name]
        how += [k for k in ("tta_hflip", "tta_translate") if self.inference.get(k)]
        how += ["sliding_window"] if self.inference.get("sliding_window") else []
        return f"{self.split} ({', '.join(how)})"


def evaluate_run(
    path: str | Path | RunDir,
    split: str | None = None,
    overrides: list[str] | None = None,
    checkpoint: str | None = None,
    write: bool = True,
    tta_hflip: bool | None = None,
    sliding_window: bool | None = None,
    window_overlap: float | None = None,
    tta_translate: int | None = None,
) -> EvalResult:
    """Re-evaluate a saved run's checkpoint on one split (by default the run's own
    ``data.test_split``), with the run's own data split.

    ``overrides`` are ``data.`` keys as typed by a user (``root=/elsewhere``);
    ``tta_hflip``, ``tta_translate``, ``sliding_window`` and ``window_overlap`` override the run's ``eval``
    section. Sliding windows evaluate segmentation at each image's own size
    (``data.eval_size=native`` unless overridden) with windows of ``eval.window_size``,
    by default the size the model was trained on. Writes ``RunDir.eval_file(...)``:
    ``eval/<split>.json`` for the best checkpoint's plain evaluation, a file of its own
    for any other checkpoint or inference. ``checkpoint`` None: the run's own
    (``RunDir.default_checkpoint``: ``best``, or ``last`` where ``best.pt`` was chosen on
    the test split).
    """
    run = path if isinstance(path, RunDir) else RunDir(path)
    checkpoint = checkpoint or run.default_checkpoint()
    data_overrides = [o if o.startswith("data.") else f"data.{o}" for o in overrides or []]
    trained = run.config()
    cfg = run.config(data_overrides) if data_overrides else trained
    cfg, window = evaluation_config(
        cfg, trained, tta_hflip, sliding_window, window_overlap, tta_translate
    )
    explicit_size = any(o.startswith("data.eval_size=") for o in data_overrides)
    if window is not None and not explicit_size:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, eval_size="native"))
    split = split or cfg.data.test_split

    device = select_device(cfg.device)
    splits = build_datasets(cfg, run.path)
    if split not in splits.datasets:
        raise MissingSplitError(
            f"split {split!r} is not in this dataset (it has: {', '.join(splits.datasets)}); "
            "choose one with --split"
        )
    num_classes = cfg.data.num_classes or splits.num_classes
    ckpt = run.read_checkpoint(checkpoint)
    ckpt.card.check_fits(str(ckpt.path), cfg.model.name, num_classes, cfg.data.in_channels)
    model, _ = run.load_model(checkpoint, device)
    if cfg.train.channels_last:  # as validated during training
        model = model.to(memory_format=torch.channels_last)
    loader = build_loader(splits.datasets[split], cfg.data, train=False, device=device)
    loss_fn = run_loss(cfg, splits, num_classes, run.path).to(device)
    ev = cfg.eval
    precision = Precision(cfg.train.amp, device)  # train.amp=auto resolved for this device
    inference = {
        "tta_hflip": ev.tta_hflip,
        "tta_translate": ev.tta_translate,
        "sliding_window": list(window) if window else None,
        "window_overlap": ev.window_overlap if window else None,
        "window_weighting": ev.window_weighting if window else None,
        "amp": precision.amp,
    }
    predict = make_predictor(
        ev.tta_hflip, window, ev.window_overlap, ev.window_weighting, ev.tta_translate
    )
    with precision.autocast():
        loss, matrix = evaluate(
            model,
            loader,
            num_classes,
            device,
            cfg.data.ignore_index,
            loss_fn,
            predict=predict,
            topk=ev.topk,
            desc=f"eval {split}",
            metrics=saved_threshold_metrics(cfg.task, num_classes, ckpt.card.threshold),
        )
    result = EvalResult(
        run_dir=run.path,
        split=split,
        figures={"loss": loss, **matrix.compute(task=cfg.task)},
        matrix=confusion_of(matrix),
        class_names=list(splits.class_names),
        loss=loss,
        checkpoint=ckpt.path,
        task=cfg.task,
        inference=inference,
        epoch=ckpt.epoch,
    )
    if write:
        result.out = write_eval(run, result)
    return result


def evaluate_in_memory(
    run: RunDir,
    cfg: ExperimentConfig,
    model: nn.Module,
    dataset: Dataset,
    split: str,
    class_names: list[str],
    loss_fn: nn.Module | None = None,
    checkpoint: str = "best",
) -> EvalResult:
    """A checkpoint of the run, loaded into ``model`` (a user's own model object), on
    ``dataset`` (used as it is); written as ``evaluate_run`` writes."""
    ckpt = run.read_checkpoint(checkpoint)
    device = select_device(cfg.device)
    model = run.load_weights(model, checkpoint).to(device)
    loader = build_loader(dataset, cfg.data, train=False, device=device)
    num_classes = len(class_names)
    loss_fn = loss_fn or build_loss(cfg.loss, num_classes, cfg.data.ignore_index, None, cfg.task)
    metrics = saved_threshold_metrics(cfg.task, num_classes, ckpt.card.threshold)
    loss, matrix = evaluate(
        model, loader, num_classes, device, cfg.data.ignore_index, loss_fn.to(device),
        topk=cfg.eval.topk, desc=f"eval {split}", metrics=metrics,
    )  # fmt: skip
    result = EvalResult(
        run_dir=run.path,
        split=split,
        figures={"loss": loss, **matrix.compute()},
        matrix=confusion_of(matrix),
        class_names=list(class_names),
        loss=loss,
        checkpoint=ckpt.path,
        task=cfg.task,
        inference={"tta_hflip": False, "sliding_window": None, "amp": "off"},
        epoch=ckpt.epoch,
    )
    result.out = write_eval(run, result)
    return result


def run_loss(
    cfg: ExperimentConfig, splits: DataSplits, num_classes: int, run_dir: Path
) -> nn.Module:
    """The loss as training logged it: with the run's class weights (class_weights.json),
    or for multi-label the positive weights of its training split."""
    if cfg.task == "multilabel":
        train = splits.raw.get(cfg.data.train_split)
        auto = cfg.loss.pos_weight == "auto" and train is not None
        weights = positive_weights(cfg.loss, label_matrix(train) if auto else None)
        return build_loss(cfg.loss, num_classes, cfg.data.ignore_index, weights, cfg.task)
    class_weights = resolve_class_weights(cfg.data, num_classes, run_dir, seed=cfg.seed)
    return build_loss(cfg.loss, num_classes, cfg.data.ignore_index, class_weights)


def saved_threshold_metrics(
    task: str, num_classes: int, threshold: float | None
) -> MultiLabelMetrics | None:
    """Multi-label figures at the threshold the model card keeps (chosen on validation
    in training; 0.5 for a card without one); None for the other tasks' confusion matrix."""
    if task != "multilabel":
        return None
    return MultiLabelMetrics(num_classes, 0.5 if threshold is None else threshold)


def confusion_of(metrics: ConfusionMatrix | MultiLabelMetrics) -> torch.Tensor:
    """The split's confusion matrix; an empty tensor for multi-label figures (C yes/no
    decisions have no C x C matrix: their counts are the per-label figures)."""
    if isinstance(metrics, MultiLabelMetrics):
        return torch.zeros(0, 0, dtype=torch.int64)
    return metrics.matrix.cpu().clone()


def evaluation_config(
    cfg: ExperimentConfig,
    trained: ExperimentConfig,
    tta_hflip: bool | None,
    sliding_window: bool | None,
    window_overlap: float | None,
    tta_translate: int | None = None,
) -> tuple[ExperimentConfig, tuple[int, int] | None]:
    """The run's config with the caller's ``eval`` choices, and the sliding window (or
    None): typed values set with ``dataclasses.replace``, checked as the config checks them."""
    chosen = {"tta_hflip": tta_hflip, "sliding_window": sliding_window}
    chosen["window_overlap"] = window_overlap
    chosen["tta_translate"] = tta_translate
    ev = dataclasses.replace(cfg.eval, **{k: v for k, v in chosen.items() if v is not None})
    if not 0 <= ev.window_overlap < 1:
        raise ConfigError(
            f"'eval.window_overlap' (--overlap) must be in [0, 1), got {ev.window_overlap}"
        )
    window = None
    if ev.sliding_window:
        if cfg.task != "segmentation":
            raise ConfigError("eval.sliding_window: sliding windows are for segmentation runs")
        height, width = ev.window_size or training_size(trained)
        window = (int(height), int(width))
    return dataclasses.replace(cfg, eval=ev), window


def training_size(cfg: ExperimentConfig) -> list[int]:
    """The (height, width) a segmentation model saw in training: its crops, else images."""
    return list(cfg.data.crop_size or cfg.data.image_size)


def write_eval(run: RunDir, result: EvalResult) -> Path:
    """The evaluation as strict JSON (undefined figures as null), in a file named after
    what produced it (``RunDir.eval_file``)."""
    checkpoint = (
        str(result.checkpoint.relative_to(run.path))
        if result.checkpoint.is_relative_to(run.path)
        else str(result.checkpoint)
    )
    payload = {
        "split": result.split,
        "task": result.task,
        "checkpoint": checkpoint,
        "epoch": result.epoch,
        "inference": result.inference,
        "class_names": result.class_names,
        "figures": json_safe(result.figures),
        "confusion_matrix": result.matrix.tolist(),
    }
    out = run.eval_file(
        result.split,
        result.checkpoint.stem,
        tta=bool(result.inference.get("tta_hflip") or result.inference.get("tta_translate")),
        sliding=bool(result.inference.get("sliding_window")),
    )
    with run.writing(out):
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(payload, indent=1, allow_nan=False))
    return out
