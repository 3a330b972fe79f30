"""The training loop, one for both tasks: segmentation is classification of every pixel.

``fit(cfg)`` reads top to bottom: processes, run directory, data, the training parts
(``build.build_parts``: model, loss, optimiser, schedule, precision, EMA, teacher),
a resume, then for each epoch ``train_one_epoch`` and ``validate``, one line of
``metrics.jsonl``, the checkpoints and early stopping. Features are small functions
the loop calls, never callbacks. ``docs/training.md`` lists every switch.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..config import ExperimentConfig, save_config
from ..data import DataSplits, build_datasets, build_loader
from ..errors import UserError
from ..log import logger, progress
from ..metrics import ConfusionMatrix
from . import distributed as ddp
from .build import TrainParts, build_parts, model_card
from .checkpoint import load_checkpoint, restore_training_state, save_checkpoint, training_state
from .early_stopping import EarlyStopping, figure, improved
from .evaluate import auxiliary_outputs, evaluate, main_output
from .finetune import keep_frozen_norms_in_eval
from .records import (
    METRICS_FILE,
    append_metrics,
    epoch_line,
    open_tensorboard,
    read_metrics,
    write_metrics,
)
from .runtime import new_run_dir, seed_everything

CONFIG_FILE = "config.yaml"
__all__ = ["METRICS_FILE", "NonFiniteLossError", "TrainResult", "fit", "read_metrics"]


class NonFiniteLossError(UserError, RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class TrainResult:
    run_dir: Path
    best_metric: str
    best_value: float
    best_epoch: int
    epochs_run: int
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped_early: bool = False
    is_main: bool = True  # rank 0 (or a single process): the one that writes files


# --------------------------------------------------------------------------- one step
def compute_loss(
    parts: TrainParts, output: Any, images: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Main loss + ``aux_weight`` x auxiliary-head losses, mixed with the teacher's soft
    targets when distilling; returns (loss, main logits)."""
    logits = main_output(output)
    loss = parts.loss_fn(logits, targets)
    for aux in auxiliary_outputs(output):
        loss = loss + parts.cfg.loss.aux_weight * parts.loss_fn(aux, targets)
    if parts.distill is not None:
        loss = parts.distill(loss, logits, images, targets)
    return loss, logits


class TrainConfusion:
    """Training counts kept on the device (no host sync per step), read once per epoch."""

    def __init__(self, num_classes: int, ignore_index: int, device: torch.device) -> None:
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.counts = torch.zeros(num_classes**2 + 1, dtype=torch.int64, device=device)

    @torch.no_grad()
    def update(self, logits: torch.Tensor, targets: torch.Tensor) -> None:
        n = self.num_classes
        valid = (targets >= 0) & (targets < n)  # ignore_index (and nothing else) falls out
        index = torch.where(valid, targets * n + logits.argmax(dim=1), n * n).reshape(-1)
        if index.is_cuda:
            self.counts.index_add_(0, index, torch.ones_like(index))
        else:
            self.counts += torch.bincount(index, minlength=n * n + 1)

    def matrix(self, ctx: ddp.DistContext) -> ConfusionMatrix:
        counts = ddp.all_reduce_sum(self.counts, ctx).cpu()
        matrix = ConfusionMatrix(self.num_classes, self.ignore_index)
        matrix.matrix = counts[:-1].reshape(self.num_classes, self.num_classes).clone()
        return matrix


def check_finite(loss_sum: torch.Tensor, seen: int, where: str, ctx: ddp.DistContext) -> float:
    """The mean loss so far (over every process); raises when it is NaN or infinite."""
    totals = ddp.all_reduce_sum(torch.stack([loss_sum, loss_sum.new_tensor(seen)]), ctx)
    mean = float(totals[0]) / max(float(totals[1]), 1.0)
    if not math.isfinite(mean):
        raise NonFiniteLossError(
            f"loss became {mean} {where}; stopped, the last good checkpoint is kept "
            "(lower optim.lr, set optim.clip_grad_norm, or train.amp=off)"
        )
    return mean


# --------------------------------------------------------------------------- one epoch
def train_one_epoch(
    parts: TrainParts, loader: DataLoader, epoch: int, real_samples: int | None = None
) -> dict[str, float]:
    """One pass over ``loader``: forward under autocast, scaled backward, an optimiser
    and schedule step every ``optim.accumulate_steps`` batches, EMA update.

    ``real_samples``: how many of this process's samples are not ``DistributedSampler``
    padding; only those enter the training figures.
    """
    cfg, ctx, device = parts.cfg, parts.ctx, parts.device
    model, optimizer = parts.forward_model, parts.optimizer
    parts.model.train()
    keep_frozen_norms_in_eval(parts.model)
    accumulate, batches = cfg.optim.accumulate_steps, len(loader)
    confusion = (
        TrainConfusion(parts.num_classes, cfg.data.ignore_index, device)
        if cfg.train.train_metrics
        else None
    )
    limit = real_samples if real_samples is not None else math.inf
    loss_sum, seen = torch.zeros((), dtype=torch.float64, device=device), 0
    to_device = {"device": device, "non_blocking": True}
    if cfg.train.channels_last:
        to_device["memory_format"] = torch.channels_last
    bar = progress(loader, desc=f"epoch {epoch + 1}/{cfg.train.epochs}") if ctx.is_main else loader
    started = time.perf_counter()
    for step, (images, targets) in enumerate(bar):
        images = images.to(**to_device)
        targets = targets.to(device, non_blocking=True)
        if step % accumulate == 0:
            optimizer.zero_grad(set_to_none=True)
        last_of_group = (step + 1) % accumulate == 0 or step + 1 == batches
        group_size = min(accumulate, batches - step // accumulate * accumulate)
        no_sync = ctx.enabled and not last_of_group
        with model.no_sync() if no_sync else contextlib.nullcontext():
            with parts.precision.autocast():
                output = model(images)
                loss, logits = compute_loss(parts, output, images, targets)
            parts.precision.backward(loss / group_size if group_size > 1 else loss)
        if last_of_group:
            parts.precision.step(optimizer, parts.model.parameters(), cfg.optim.clip_grad_norm)
            parts.scheduler.step()
            if parts.ema is not None:
                parts.ema.update(parts.model)

        keep = images.shape[0] if seen + images.shape[0] <= limit else max(0, int(limit - seen))
        loss_sum += loss.detach() * keep
        seen += keep
        if confusion is not None and keep:
            confusion.update(logits.detach()[:keep], targets[:keep])
        if (step + 1) % cfg.train.log_every == 0 or step + 1 == batches:
            mean = check_finite(loss_sum, seen, f"at epoch {epoch + 1}, step {step + 1}", ctx)
            if hasattr(bar, "set_postfix"):
                rate = seen * ctx.world_size / max(time.perf_counter() - started, 1e-9)
                bar.set_postfix(
                    loss=f"{mean:.4f}", lr=f"{base_lr(optimizer):.2e}", img_s=f"{rate:.0f}"
                )
    elapsed = time.perf_counter() - started
    totals = ddp.all_reduce_sum(torch.stack([loss_sum, loss_sum.new_tensor(seen)]), ctx)
    stats = {
        "train/loss": float(totals[0]) / max(float(totals[1]), 1.0),
        "train/samples": int(totals[1]),  # every process, padding left out
        "train/images_per_second": float(totals[1]) / max(elapsed, 1e-9),
    }
    if confusion is not None:
        figures = confusion.matrix(ctx).compute()
        stats.update({f"train/{k}": v for k, v in figures.items() if isinstance(v, float)})
    return stats


def validate(
    parts: TrainParts, loader: DataLoader, model: nn.Module, prefix: str
) -> dict[str, Any]:
    """Loss and every figure of one split, summed over processes (shards hold no padding)."""
    cfg, ctx = parts.cfg, parts.ctx
    ddp.sync_buffers(model, ctx)
    with parts.precision.autocast():
        loss, matrix = evaluate(
            model,
            loader,
            parts.num_classes,
            parts.device,
            cfg.data.ignore_index,
            parts.loss_fn,
            topk=cfg.eval.topk,
            desc=prefix,
        )
    if ctx.enabled:
        count = float(len(loader.sampler))  # type: ignore[arg-type]
        totals = ddp.all_reduce_sum(torch.tensor([loss * count, count], dtype=torch.float64), ctx)
        loss = float(totals[0]) / max(float(totals[1]), 1.0)
        matrix.all_reduce()
    return {f"{prefix}/loss": loss, **{f"{prefix}/{k}": v for k, v in matrix.compute().items()}}


def base_lr(optimizer: torch.optim.Optimizer) -> float:
    """The schedule's learning rate (a group's own is this times its ``lr_mult``)."""
    group = optimizer.param_groups[0]
    return group["lr"] / group.get("lr_mult", 1.0)


# --------------------------------------------------------------------------- the run
def fit(cfg: ExperimentConfig, run_dir: Path | None = None, resume: bool = False) -> TrainResult:
    """Train ``cfg`` into ``run_dir`` (a new ``runs/<name>`` by default); ``resume``
    continues from ``checkpoints/last.pt``. Under ``torchrun`` every process calls it."""
    ctx = ddp.setup(cfg.device)
    try:
        return _fit(cfg, run_dir, resume, ctx)
    finally:
        ddp.cleanup(ctx)


def _fit(
    cfg: ExperimentConfig, run_dir: Path | None, resume: bool, ctx: ddp.DistContext
) -> TrainResult:
    run_dir = prepare_run_dir(cfg, run_dir, ctx)
    seed_everything(cfg.seed, cfg.deterministic)
    splits, class_weights = ddp.main_first(ctx, lambda: read_data(cfg, run_dir))
    num_classes = cfg.data.num_classes or splits.num_classes
    train_set = splits.datasets[cfg.data.train_split]
    val_set = splits.datasets.get(cfg.data.val_split)
    train_loader = build_loader(
        train_set,
        cfg.data,
        train=True,
        device=ctx.device,
        seed=cfg.seed,
        sampler=ddp.train_sampler(train_set, ctx, cfg.seed),
    )
    val_loader = None
    if val_set is not None:
        val_sampler = ddp.eval_sampler(val_set, ctx)
        val_loader = build_loader(val_set, cfg.data, False, ctx.device, sampler=val_sampler)
    metric, mode = cfg.best_metric, cfg.train.best_mode
    if val_loader is None and metric.startswith("val"):
        raise ValueError(
            f"train.best_metric={metric} needs a validation split, and this dataset has no "
            f"'{cfg.data.val_split}' split: set data.val_fraction > 0 or train.best_metric=train/loss"
        )

    parts = build_parts(
        cfg, num_classes, ctx, len(train_loader), class_weights, None if resume else train_loader
    )
    seed_everything(cfg.seed + ctx.rank)  # augmentation streams: one per process
    card = model_card(cfg, splits.class_names)
    best = {"metric": metric, "value": None, "epoch": -1}
    start_epoch, history = 0, []
    if resume:
        path = run_dir / "checkpoints" / "last.pt"
        state = load_checkpoint(path)
        restore_training_state(parts, state, str(path))
        start_epoch, best["value"], best["epoch"] = (
            state["epoch"],
            state["best_value"],
            state["best_epoch"],
        )
        history = read_metrics(run_dir)[:start_epoch]
        if ctx.is_main:
            write_metrics(run_dir, history)
            logger.info(f"resuming {run_dir} after epoch {start_epoch}")

    stop = cfg.train.early_stopping
    stopper = None
    if stop.enabled:
        stopper = EarlyStopping(
            stop.metric or metric, stop.mode or mode, stop.patience, stop.min_delta
        )
        for record in history:
            stopper.update(record)
    tensorboard = open_tensorboard(run_dir) if cfg.train.tensorboard and ctx.is_main else None
    real = ddp.real_samples(len(train_set), ctx.rank, ctx.world_size) if ctx.enabled else None
    gif = learning_gif(cfg, val_set, splits) if ctx.is_main else None
    stopped_early = False
    try:
        for epoch in range(start_epoch, cfg.train.epochs):
            if parts.plan.apply(parts.model, epoch):
                parts.rewrap()
                logger.info(
                    f"fine-tuning: the last {parts.plan.trainable_stages(epoch)} of "
                    f"{len(parts.plan.stages)} stages train from epoch {epoch + 1}"
                )
            reseed_epoch(train_loader, cfg.seed, epoch, ctx)
            record: dict[str, Any] = {"epoch": epoch + 1, "lr": base_lr(parts.optimizer)}
            stats = train_one_epoch(parts, train_loader, epoch, real)
            record["lr_end"] = base_lr(parts.optimizer)
            record.update(stats)
            if val_loader is not None and (
                (epoch + 1) % cfg.train.val_every == 0 or epoch + 1 == cfg.train.epochs
            ):
                record.update(validate(parts, val_loader, parts.model, "val"))
                if parts.ema is not None:
                    record.update(validate(parts, val_loader, parts.ema.module, "val_ema"))
            history.append(record)

            value = figure(record, metric)
            is_best = value is not None and improved(value, best["value"], mode)
            if is_best:
                best["value"], best["epoch"] = value, epoch + 1
            state = training_state(parts, epoch + 1, best, card)
            if ctx.is_main:
                append_metrics(run_dir, record)
                if tensorboard is not None:
                    tensorboard.log(record)
                save_run_checkpoints(parts, state, run_dir, is_best, metric)
                if gif is not None:
                    gif.record(parts.model, epoch + 1)
                logger.info(epoch_line(record, cfg.task))
            if stopper is not None and stopper.update(record):
                logger.info(
                    f"early stopping: {stopper.metric} did not improve by more than "
                    f"{stopper.min_delta} for {stopper.stale} evaluated epochs"
                )
                stopped_early = True
                break
    finally:
        if tensorboard is not None:
            tensorboard.close()
        if gif is not None and gif.frames:
            gif.save(run_dir / "learning.gif")
    return TrainResult(
        run_dir=run_dir,
        best_metric=metric,
        best_value=best["value"] if best["value"] is not None else math.nan,
        best_epoch=best["epoch"],
        epochs_run=len(history),
        history=history,
        stopped_early=stopped_early,
        is_main=ctx.is_main,
    )


def read_data(cfg: ExperimentConfig, run_dir: Path) -> tuple[DataSplits, torch.Tensor | None]:
    """The splits (``splits.json`` written on first use) and ``data.class_weights``."""
    from ..data.stats import resolve_class_weights

    splits = build_datasets(cfg, run_dir)
    num_classes = cfg.data.num_classes or splits.num_classes
    return splits, resolve_class_weights(cfg.data, num_classes, run_dir, seed=cfg.seed)


def learning_gif(cfg: ExperimentConfig, val_set: Any, splits: DataSplits) -> Any:
    """Segmentation with ``train.learning_gif``: fixed validation images predicted after
    every epoch, saved as ``learning.gif`` (a resumed run shows the epochs since)."""
    if cfg.task != "segmentation" or not cfg.train.learning_gif or val_set is None:
        return None
    from ..data.transforms import normalization
    from ..viz.learning import LearningGif

    mean, std = normalization(cfg.data) if cfg.data.normalize else (None, None)
    return LearningGif(
        val_set,
        cfg.data.num_classes or splits.num_classes,
        num_images=cfg.train.gif_images,
        mean=mean,
        std=std,
        class_names=splits.class_names,
    )


def prepare_run_dir(cfg: ExperimentConfig, run_dir: Path | None, ctx: ddp.DistContext) -> Path:
    """Rank 0 makes the directory (never overwriting a run) and saves the config; every
    process gets its path."""
    path = None
    if ctx.is_main:
        path = new_run_dir(cfg.output_dir, cfg.name) if run_dir is None else Path(run_dir)
        path.mkdir(parents=True, exist_ok=True)
        save_config(cfg, path / CONFIG_FILE)
    return Path(ddp.broadcast_object(str(path) if path else None, ctx))


def reseed_epoch(loader: DataLoader, seed: int, epoch: int, ctx: ddp.DistContext) -> None:
    """Each epoch's order and worker seeds depend on (seed, epoch, rank) only: the same
    after a resume as in an uninterrupted run."""
    loader.generator.manual_seed((seed + epoch) * ctx.world_size + ctx.rank)
    if hasattr(loader.sampler, "set_epoch"):
        loader.sampler.set_epoch(epoch)


def save_run_checkpoints(
    parts: TrainParts, state: dict[str, Any], run_dir: Path, is_best: bool, metric: str
) -> None:
    """``last.pt`` every epoch, ``best.pt`` when ``metric`` improved, ``ema.pt`` (the
    averaged weights as ``model``) with EMA; a ``val_ema/`` metric makes ``best.pt``
    hold the averaged weights too."""
    folder = run_dir / "checkpoints"
    save_checkpoint(state, folder / "last.pt")
    ema_state = None
    if parts.ema is not None:
        ema_state = {**state, "model": parts.ema.module.state_dict()}
        save_checkpoint(ema_state, folder / "ema.pt")
    if is_best:
        use_ema = ema_state is not None and metric.startswith("val_ema/")
        save_checkpoint(ema_state if use_ema else state, folder / "best.pt")
