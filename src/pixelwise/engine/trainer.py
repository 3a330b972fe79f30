"""The training loop, one for both tasks: segmentation is classification of every pixel.

``fit(cfg)`` reads top to bottom: processes, run directory, data, the training parts
(``build.build_parts``: model, loss, optimiser, schedule, precision, EMA, teacher),
a resume, then for each epoch ``train_one_epoch`` and ``validate``, one line of
``metrics.jsonl``, the checkpoints and early stopping. Features are small functions
the loop calls, never callbacks. ``docs/training.md`` lists every switch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler

from ..card import ModelCard
from ..checkpoint import load_checkpoint, save_checkpoint
from ..config import ConfigError, ExperimentConfig, result_changing_differences
from ..data import DataSplits, TransformedDataset, build_datasets, build_loader
from ..data.folders import label_matrix
from ..data.stats import resolve_class_weights
from ..errors import UserError
from ..log import logger, progress
from ..losses import positive_weights
from ..metrics import ConfusionMatrix, MultiLabelMetrics, prediction_coverage
from ..models.base import split_output
from ..run import RunDir, open_for_training, remove_if_empty_run
from ..runtime import seed_everything
from . import distributed as ddp
from .build import TrainParts, build_parts
from .early_stopping import EarlyStopping, figure, improved
from .evaluate import evaluate
from .finetune import keep_frozen_norms_in_eval
from .loggers import close_loggers, open_loggers
from .mixing import batch_mixer
from .records import epoch_line, format_rate
from .resume import restore_training_state, training_state
from .schedule import BudgetScheduler

__all__ = ["EpochEnd", "NonFiniteLossError", "TrainResult", "fit"]


class NonFiniteLossError(UserError, RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class Pieces:
    """A user's own pieces for the loop; the config fills whatever is not given.

    ``model`` is any ``nn.Module`` returning logits (or ``{"out", "aux"}`` or a tuple);
    the datasets are map-style, returning ``(image, target)`` tensors ready for the model
    (pixelwise applies no transform to them; uint8 images are only scaled to 0-1);
    ``loss`` is ``(logits, targets) -> scalar``.
    """

    model: nn.Module | None = None
    train_data: Dataset | None = None
    val_data: Dataset | None = None
    test_data: Dataset | None = None
    loss: nn.Module | None = None
    class_names: list[str] | None = None

    @property
    def has_data(self) -> bool:
        return self.train_data is not None


@dataclass
class EpochEnd:
    """What an ``on_epoch`` hook sees after each epoch's checkpoints are written (rank 0
    only): the plain model, the epoch's record, the data and the run."""

    epoch: int
    model: nn.Module
    record: dict[str, Any]
    splits: DataSplits
    run: RunDir


EpochHook = Callable[[EpochEnd], None]


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
    logits, auxiliary = split_output(output)
    loss = parts.loss_fn(logits, targets)
    for aux in auxiliary:
        loss = loss + parts.cfg.loss.aux_weight * parts.loss_fn(aux, targets)
    if parts.distill is not None:
        loss = parts.distill(loss, logits, images, targets)
    return loss, logits


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
    parts: TrainParts,
    loader: DataLoader,
    epoch: int,
    real_samples: int | None = None,
    after_step: Callable[[int], bool] | None = None,
) -> dict[str, float]:
    """One pass over ``loader``: forward under autocast, scaled backward, an optimiser
    and schedule step every ``optim.accumulate_steps`` batches, EMA update.

    ``real_samples``: how many of this process's samples are not ``DistributedSampler``
    padding; only those enter the training figures. ``after_step(batches done)`` is
    called after every optimiser step (mid-epoch checkpoints); True ends the epoch there
    (the time budget is spent).
    """
    cfg, ctx, device = parts.cfg, parts.ctx, parts.device
    model, optimizer = parts.forward_model, parts.optimizer
    parts.model.train()
    keep_frozen_norms_in_eval(parts.model)
    accumulate, batches = cfg.optim.accumulate_steps, len(loader)
    confusion = (
        training_metrics(parts.num_classes, cfg).to(device) if cfg.train.train_metrics else None
    )
    limit = real_samples if real_samples is not None else math.inf
    mix = batch_mixer(cfg, parts.num_classes)  # MixUp/CutMix: soft targets, hard labels
    loss_sum, seen = torch.zeros((), dtype=torch.float64, device=device), 0
    to_device = {"device": device, "non_blocking": True}
    if cfg.train.channels_last:
        to_device["memory_format"] = torch.channels_last
    bar = progress(loader, desc=f"epoch {epoch + 1}/{cfg.train.epochs}") if ctx.is_main else loader
    started = time.perf_counter()
    for step, (images, targets) in enumerate(bar):
        images = images.to(**to_device)
        targets = targets.to(device, non_blocking=True)
        images, targets, labels = mix(images, targets)
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
            if parts.lookahead is not None:
                parts.lookahead.after_step(parts.model, parts.scheduler.last_epoch)
            if parts.ema is not None:
                parts.ema.update(parts.model)

        keep = images.shape[0] if seen + images.shape[0] <= limit else max(0, int(limit - seen))
        loss_sum += loss.detach() * keep
        seen += keep
        if confusion is not None and keep:
            confusion.update(logits.detach()[:keep], labels[:keep])
        if (step + 1) % cfg.train.log_every == 0 or step + 1 == batches:
            mean = check_finite(loss_sum, seen, f"at epoch {epoch + 1}, step {step + 1}", ctx)
            if hasattr(bar, "set_postfix"):
                rate = seen * ctx.world_size / max(time.perf_counter() - started, 1e-9)
                bar.set_postfix(
                    loss=f"{mean:.4f}", lr=f"{base_lr(optimizer):.2e}", speed=format_rate(rate)
                )
        if last_of_group and after_step is not None and after_step(step + 1):
            break
    elapsed = time.perf_counter() - started
    totals = ddp.all_reduce_sum(torch.stack([loss_sum, loss_sum.new_tensor(seen)]), ctx)
    stats = {
        "train/loss": float(totals[0]) / max(float(totals[1]), 1.0),
        "train/samples": int(totals[1]),  # every process, padding left out
        "train/images_per_second": float(totals[1]) / max(elapsed, 1e-9),
    }
    if confusion is not None:
        if ctx.enabled:
            confusion.all_reduce()
        figures = confusion.compute(task=cfg.task)
        stats.update({f"train/{k}": v for k, v in figures.items() if isinstance(v, float)})
    return stats


def validate(
    parts: TrainParts, loader: DataLoader, model: nn.Module, prefix: str
) -> tuple[dict[str, Any], ConfusionMatrix]:
    """Loss and every figure of one split, summed over processes (shards hold no padding),
    and the split's confusion matrix."""
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
            # multilabel: the threshold of best macro F1 on this split (the card keeps it)
            metrics=MultiLabelMetrics(parts.num_classes, None)
            if cfg.task == "multilabel"
            else None,
        )
    if ctx.enabled:
        count = float(len(loader.sampler))  # type: ignore[arg-type]
        totals = ddp.all_reduce_sum(torch.tensor([loss * count, count], dtype=torch.float64), ctx)
        loss = float(totals[0]) / max(float(totals[1]), 1.0)
        matrix.all_reduce()
    figures = {f"{prefix}/{k}": v for k, v in matrix.compute(task=cfg.task).items()}
    return {f"{prefix}/loss": loss, **figures}, matrix


def training_metrics(num_classes: int, cfg: ExperimentConfig) -> Any:
    """The training figures' accumulator: a confusion matrix, or multi-label figures at
    the threshold 0.5."""
    if cfg.task == "multilabel":
        return MultiLabelMetrics(num_classes, 0.5)
    return ConfusionMatrix(num_classes, cfg.data.ignore_index, cfg.eval.topk)


def base_lr(optimizer: torch.optim.Optimizer) -> float:
    """The schedule's learning rate (a group's own is this times its ``lr_mult``)."""
    group = optimizer.param_groups[0]
    return group["lr"] / group.get("lr_mult", 1.0)


def check_parameters_finite(model: nn.Module, epoch: int) -> None:
    """Refuse to save weights that diverged: a last optimiser step can make them
    non-finite while the loss it was computed from still looked fine."""
    bad = next((n for n, p in model.named_parameters() if not torch.isfinite(p).all()), None)
    if bad is not None:
        raise NonFiniteLossError(
            f"weights became NaN or infinite at the end of epoch {epoch} (first: {bad}); "
            "stopped, the last good checkpoint is kept (lower optim.lr, set "
            "optim.clip_grad_norm, or train.amp=off)"
        )


# --------------------------------------------------------------------------- the run
def fit(
    cfg: ExperimentConfig,
    run_dir: Path | None = None,
    resume: bool = False,
    on_epoch: EpochHook | None = None,
    allow_config_changes: bool = False,
    pieces: Pieces | None = None,
) -> TrainResult:
    """Train ``cfg`` into ``run_dir`` (a new ``runs/<name>`` by default); ``resume``
    continues from ``checkpoints/last.pt`` (refused when ``cfg`` differs from the saved
    config in a key that changes the result, unless ``allow_config_changes``).
    ``on_epoch`` is called on rank 0 after each epoch's checkpoints
    (``pixelwise.experiment`` records the learning GIF with it); ``pieces`` are a user's
    own model, datasets and loss. Under ``torchrun`` every process calls it; rank 0 owns
    the run directory."""
    ctx = ddp.setup(cfg.device)
    run = None
    try:
        run = open_run(cfg, run_dir, resume, ctx, allow_config_changes)
        if ctx.is_main:
            with run.lock():
                return _fit(cfg, run, resume, ctx, on_epoch, pieces or Pieces())
        return _fit(cfg, run, resume, ctx, on_epoch, pieces or Pieces())
    except BaseException:
        if run is not None and ctx.is_main and not resume:
            remove_if_empty_run(run)
        raise
    finally:
        ddp.cleanup(ctx)


def open_run(
    cfg: ExperimentConfig,
    run_dir: Path | None,
    resume: bool,
    ctx: ddp.DistContext,
    allow_config_changes: bool = False,
) -> RunDir:
    """Rank 0 opens the directory (a new one, never an existing run unless resuming),
    checks a resumed config against the saved one, and saves the config; every process
    gets its path."""
    path = None
    if ctx.is_main:
        run = open_for_training(cfg.output_dir, cfg.name, run_dir, resume)
        run.remove_temporary_files()
        if resume:
            check_resumed_config(run.config(), cfg, allow_config_changes)
        if cfg.data.persistent_workers and cfg.data.num_workers > 0:
            logger.warning(
                "data.persistent_workers=true: worker processes keep their random state "
                "across epochs, so a resumed run will not be exactly the uninterrupted one "
                "(data.persistent_workers=false is exact)"
            )
        run.save_config(cfg)
        path = str(run.path)
    return RunDir(ddp.broadcast_object(path, ctx))


def check_resumed_config(
    saved: ExperimentConfig, new: ExperimentConfig, allow_changes: bool
) -> None:
    """A resume continues the saved run: a key that changes the result (the data, the
    model, the optimiser, ``train.epochs``, ...) must not differ, unless the user says so
    (``--allow-config-changes``). A longer or shorter ``train.epochs`` then recomputes the
    schedule for the new length, continuing from the step reached."""
    changed = result_changing_differences(saved, new)
    if not changed:
        return
    listed = "; ".join(f"{key}: {old!r} -> {value!r}" for key, old, value in changed)
    if not allow_changes:
        raise ConfigError(
            f"the resumed config differs from the run's saved config.yaml in {listed}; "
            "resume with the saved values, or pass --allow-config-changes to continue anyway"
        )
    logger.warning(f"resuming with a changed config ({listed}): the result is not the saved run's")


def _fit(
    cfg: ExperimentConfig,
    run: RunDir,
    resume: bool,
    ctx: ddp.DistContext,
    on_epoch: EpochHook | None,
    pieces: Pieces,
) -> TrainResult:
    seed_everything(cfg.seed, cfg.deterministic)
    splits, class_weights = ddp.main_first(ctx, lambda: read_data(cfg, run.path, pieces))
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
        raise UserError(
            f"train.best_metric={metric} needs a validation split, and this dataset has no "
            f"'{cfg.data.val_split}' split: set data.val_fraction > 0 or train.best_metric=train/loss"
        )

    parts = build_parts(
        cfg,
        num_classes,
        ctx,
        len(train_loader),
        class_weights,
        None if resume else train_loader,
        model=pieces.model,
        loss_fn=pieces.loss,
    )
    seed_everything(cfg.seed + ctx.rank)  # augmentation streams: one per process
    card = ModelCard.from_config(cfg, splits.class_names)
    if pieces.model is not None:
        card = card.for_module(pieces.model)
    best: dict[str, Any] = {"metric": metric, "value": None, "epoch": -1, "top": []}
    start_epoch, history, skip = 0, [], 0
    if resume:
        path = run.checkpoint_file("last")
        state = load_checkpoint(path)
        restore_training_state(parts, state, str(path))
        start_epoch, best["value"], best["epoch"] = (
            state["epoch"],
            state["best_value"],
            state["best_epoch"],
        )
        best["top"] = [list(entry) for entry in state.get("top_k") or []]
        skip = int(state.get("batch", 0))  # batches of the next epoch a step checkpoint holds
        if ctx.is_main:
            history = run.truncate_metrics(start_epoch)
            within = f" and {skip} batches of epoch {start_epoch + 1}" if skip else ""
            logger.info(f"resuming {run.path} after epoch {start_epoch}{within}")
        history = ddp.broadcast_object(history, ctx)

    stop = cfg.train.early_stopping
    stopper = None
    if stop.enabled:
        stopper = EarlyStopping(
            stop.metric or metric, stop.mode or mode, stop.patience, stop.min_delta
        )
        for record in history:
            stopper.update(record)
    loggers = open_loggers(cfg, run) if ctx.is_main else []  # TensorBoard, CSV, MLflow
    streamed = isinstance(train_set, IterableDataset)  # splits itself: no sampler padding
    real = (
        ddp.real_samples(len(train_set), ctx.rank, ctx.world_size)
        if ctx.enabled and not streamed
        else None
    )
    coverage_warned = False
    stopped_early = False
    budget = parts.scheduler if isinstance(parts.scheduler, BudgetScheduler) else None
    try:
        for epoch in range(start_epoch, cfg.train.epochs):
            if budget is not None and budget.spent:
                break
            if changes := parts.plan.apply(parts.model, epoch):
                parts.rewrap()
                for change in changes:
                    logger.info(change)
            reseed_epoch(train_loader, cfg.seed, epoch, ctx)
            skip_batches(train_loader, skip)
            after_step = step_hook(parts, run, card, best, epoch, skip, len(train_loader), budget)
            skip = 0
            record: dict[str, Any] = {"epoch": epoch + 1, "lr": base_lr(parts.optimizer)}
            if budget is not None:
                budget.start_clock()
            stats = train_one_epoch(parts, train_loader, epoch, real, after_step=after_step)
            if budget is not None:
                budget.stop_clock()
            last_epoch = epoch + 1 == cfg.train.epochs or (budget is not None and budget.spent)
            record["lr_end"] = base_lr(parts.optimizer)
            record.update(stats)
            check_parameters_finite(parts.model, epoch + 1)
            if val_loader is not None and ((epoch + 1) % cfg.train.val_every == 0 or last_epoch):
                figures, matrix = validate(parts, val_loader, parts.model, "val")
                record.update(figures)
                if cfg.task == "multilabel":
                    card = dataclasses.replace(card, threshold=figures["val/threshold"])
                elif not coverage_warned and ctx.is_main:
                    coverage_warned = warn_coverage(
                        matrix, splits.class_names, epoch + 1, class_weights is not None
                    )
                if parts.ema is not None:
                    record.update(validate(parts, val_loader, parts.ema.module, "val_ema")[0])
            history.append(record)

            value = figure(record, metric)
            is_best = value is not None and improved(value, best["value"], mode)
            if is_best:
                best["value"], best["epoch"] = value, epoch + 1
            ranked, dropped = False, []
            if cfg.train.keep_best > 1 and value is not None:
                ranked, dropped = rank_epoch(
                    best["top"], value, epoch + 1, cfg.train.keep_best, mode
                )
            state = training_state(parts, epoch + 1, best, card)
            if ctx.is_main:  # the record first: resume truncates it to the checkpoint's epoch
                run.append_metrics(record)
                save_run_checkpoints(parts, state, run, is_best, metric, ranked, dropped)
                for sink in loggers:
                    sink.log(record)
                if on_epoch is not None:
                    on_epoch(EpochEnd(epoch + 1, parts.model, record, splits, run))
                logger.info(epoch_line(record, cfg.task))
            if stopper is not None and stopper.update(record):
                logger.info(
                    f"early stopping: {stopper.metric} did not improve by more than "
                    f"{stopper.min_delta} for {stopper.stale} evaluated epochs"
                )
                stopped_early = True
                break
    finally:
        close_loggers(loggers)
    if budget is not None and not budget.spent and not stopped_early:
        logger.warning(
            f"train.epochs={cfg.train.epochs} ended the run after {budget.elapsed_seconds / 60:.1f} "
            f"of train.max_minutes={cfg.train.max_minutes:g}: the learning rate did not reach "
            "its floor (raise train.epochs, the upper bound under a time budget)"
        )
    return TrainResult(
        run_dir=run.path,
        best_metric=metric,
        best_value=best["value"] if best["value"] is not None else math.nan,
        best_epoch=best["epoch"],
        epochs_run=len(history),
        history=history,
        stopped_early=stopped_early,
        is_main=ctx.is_main,
    )


def warn_coverage(
    matrix: ConfusionMatrix, class_names: list[str], epoch: int, weighted: bool = False
) -> bool:
    """Warn (once per run) when the validation predictions cover fewer classes than the
    targets; True once warned. ``weighted``: the loss already has class weights."""
    problem = prediction_coverage(matrix.matrix, class_names, weighted)
    if problem is not None:
        logger.warning(f"validation after epoch {epoch}: {problem}")
    return problem is not None


def read_data(
    cfg: ExperimentConfig, run_dir: Path, pieces: Pieces | None = None
) -> tuple[DataSplits, torch.Tensor | None]:
    """The splits (``splits.json`` written on first use, or a user's own datasets) and
    ``data.class_weights``."""
    splits = (
        user_splits(cfg, pieces) if pieces and pieces.has_data else build_datasets(cfg, run_dir)
    )
    num_classes = cfg.data.num_classes or splits.num_classes
    if cfg.task == "multilabel":  # per-label positive weights of the BCE instead
        train = splits.raw.get(cfg.data.train_split)
        auto = cfg.loss.pos_weight == "auto" and train is not None
        return splits, positive_weights(cfg.loss, label_matrix(train) if auto else None)
    return splits, resolve_class_weights(cfg.data, num_classes, run_dir, seed=cfg.seed)


def user_splits(cfg: ExperimentConfig, pieces: Pieces) -> DataSplits:
    """A user's datasets as the loop's splits, used as they are (no transform).

    Each goes to the split its ``data.*_split`` names. Where two names are one split
    (``data.val_split: test``, as ``cifar10_fast`` has it), one dataset may fill it;
    two different ones are refused rather than one silently dropped."""
    given: dict[str, tuple[str, Dataset]] = {}
    for role, data in (
        ("train", pieces.train_data),
        ("val", pieces.val_data),
        ("test", pieces.test_data),
    ):
        split = getattr(cfg.data, f"{role}_split")
        if data is None:
            continue
        if split in given and given[split][1] is not data:
            other = given[split][0]
            raise UserError(
                f"{other}_data and {role}_data both go to the {split!r} split "
                f"(data.{other}_split and data.{role}_split are both {split!r}): pass one "
                "of them, or give the splits different names"
            )
        given[split] = (role, data)
    datasets = {name: TransformedDataset(d, None) for name, (_, d) in given.items()}
    names = pieces.class_names or cfg.data.class_names
    names = names or getattr(pieces.train_data, "classes", None)
    if names is None:
        if cfg.data.num_classes is None:
            raise UserError(
                "your own datasets: give class_names, data.num_classes or data.class_names "
                "(or a `classes` attribute on the training dataset)"
            )
        names = [str(i) for i in range(cfg.data.num_classes)]
    return DataSplits(datasets, [str(n) for n in names], cfg.task)


def reseed_epoch(loader: DataLoader, seed: int, epoch: int, ctx: ddp.DistContext) -> None:
    """Each epoch's order and worker seeds depend on (seed, epoch, rank) only: the same
    after a resume as in an uninterrupted run."""
    loader.generator.manual_seed((seed + epoch) * ctx.world_size + ctx.rank)
    if hasattr(loader, "set_epoch"):  # TensorLoader: flips alternate with the epoch
        loader.set_epoch(epoch)
    if hasattr(loader.sampler, "set_epoch"):
        loader.sampler.set_epoch(epoch)


class SkippingSampler(Sampler[int]):
    """A training sampler whose next pass leaves out its first ``skip`` indices: the
    epoch's order is drawn whole (it depends on (seed, epoch, rank) only), then the
    batches a mid-epoch checkpoint had already trained are passed over, without loading
    them (loading would draw augmentation randomness)."""

    def __init__(self, base: Sampler[int]) -> None:
        self.base = base
        self.skip = 0

    def __iter__(self) -> Iterator[int]:
        skip, self.skip = self.skip, 0
        return itertools.islice(iter(self.base), skip, None)

    def __len__(self) -> int:
        return len(self.base) - self.skip  # type: ignore[arg-type]


def skip_batches(loader: DataLoader, batches: int) -> None:
    """The loader's next pass starts after its first ``batches`` batches."""
    sampler = loader.batch_sampler
    if batches == 0 and not isinstance(getattr(sampler, "sampler", None), SkippingSampler):
        return
    if not isinstance(sampler.sampler, SkippingSampler):  # type: ignore[union-attr]
        sampler.sampler = SkippingSampler(sampler.sampler)  # type: ignore[union-attr]
    sampler.sampler.skip = batches * loader.batch_size  # type: ignore[union-attr, operator]


def step_hook(
    parts: TrainParts,
    run: RunDir,
    card: ModelCard,
    best: dict[str, Any],
    epoch: int,
    skipped: int,
    batches: int,
    budget: BudgetScheduler | None,
) -> Callable[[int], bool]:
    """What follows each optimiser step of epoch ``epoch`` (0-based; ``skipped`` batches
    already trained before a resume, ``batches`` in this pass): ``last.pt`` every
    ``train.save_every_steps`` steps inside the epoch (its end writes its own), then
    whether the time budget ends the epoch."""
    every = parts.cfg.train.save_every_steps

    def after_step(done: int) -> bool:
        if every and parts.scheduler.last_epoch % every == 0 and done < batches:
            state = training_state(parts, epoch, best, card)  # collective under DDP
            state["batch"] = skipped + done  # batches of epoch + 1 trained
            if parts.ctx.is_main:
                save_step_checkpoint(state, run)
        return budget is not None and budget.spent

    return after_step


def save_step_checkpoint(state: dict[str, Any], run: RunDir) -> None:
    """``last.pt`` after an optimiser step inside an epoch (``train.save_every_steps``):
    a resume continues from that step."""
    save_checkpoint(state, run.checkpoint_file("last"))


def rank_epoch(
    top: list[list[float]], value: float, epoch: int, keep: int, mode: str
) -> tuple[bool, list[int]]:
    """Put ``(value, epoch)`` among the ``keep`` best (in place, best first; an earlier
    epoch wins a tie); returns whether it ranks and the epochs that dropped out."""
    candidates = [*top, [value, epoch]]
    candidates.sort(key=lambda entry: (-entry[0] if mode == "max" else entry[0], entry[1]))
    top[:] = candidates[:keep]
    return any(e == epoch for _, e in top), [int(e) for _, e in candidates[keep:]]


def save_run_checkpoints(
    parts: TrainParts,
    state: dict[str, Any],
    run: RunDir,
    is_best: bool,
    metric: str,
    ranked: bool = False,
    dropped: list[int] | None = None,
) -> None:
    """``best.pt`` when ``metric`` improved, ``best-eNNN.pt`` when the epoch ranks among
    ``train.keep_best``, ``ema.pt`` (the averaged weights as ``model``) with EMA, then
    ``last.pt``, and only then the top-k files that dropped out are deleted. ``last.pt``
    is written last: a run killed while writing the others resumes from the epoch
    before and writes them again, so every checkpoint ``last.pt`` names exists. A
    ``val_ema/`` metric makes the best checkpoints hold the averaged weights."""
    ema_state = None
    if parts.ema is not None:
        ema_state = {**state, "model": parts.ema.module.state_dict()}
    use_ema = ema_state is not None and metric.startswith("val_ema/")
    if is_best:
        save_checkpoint(ema_state if use_ema else state, run.checkpoint_file("best"))
    if ranked:
        save_checkpoint(ema_state if use_ema else state, run.top_checkpoint_file(state["epoch"]))
    if ema_state is not None:
        save_checkpoint(ema_state, run.checkpoint_file("ema"))
    save_checkpoint(state, run.checkpoint_file("last"))
    for epoch in dropped or []:
        run.top_checkpoint_file(epoch).unlink(missing_ok=True)
