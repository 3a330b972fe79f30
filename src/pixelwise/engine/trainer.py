"""The training loop, one for both tasks: segmentation is classification of every pixel.

``fit(cfg)`` reads top to bottom: data, model, loss, optimiser, schedule, then for
each epoch ``train_one_epoch`` and ``evaluate``, one line of ``metrics.jsonl``, the
checkpoints, and early stopping. Features are small functions the loop calls.
"""

from __future__ import annotations

import json
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
from ..log import logger, progress
from ..losses import build_loss
from ..metrics import ConfusionMatrix
from .build import build_model, model_card
from .checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .evaluate import auxiliary_outputs, evaluate, main_output
from .optim import build_optimizer, parameter_groups
from .runtime import new_run_dir, seed_everything, select_device
from .schedule import build_scheduler

METRICS_FILE = "metrics.jsonl"
CONFIG_FILE = "config.yaml"


class NonFiniteLossError(RuntimeError):
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


# --------------------------------------------------------------------------- helpers
def scalar_figures(prefix: str, figures: dict[str, Any]) -> dict[str, Any]:
    """Prefix every figure (scalars and per-class lists) with ``train/``, ``val/`` ..."""
    return {f"{prefix}/{k}": v for k, v in figures.items()}


def improved(value: float, best: float | None, mode: str, min_delta: float = 0.0) -> bool:
    if best is None or math.isnan(best):
        return not math.isnan(value)
    return value > best + min_delta if mode == "max" else value < best - min_delta


def compute_loss(
    loss_fn: nn.Module, output: Any, targets: torch.Tensor, aux_weight: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Main loss plus weighted auxiliary-head losses; returns (loss, main logits)."""
    logits = main_output(output)
    loss = loss_fn(logits, targets)
    for aux in auxiliary_outputs(output):
        loss = loss + aux_weight * loss_fn(aux, targets)
    return loss, logits


# --------------------------------------------------------------------------- one epoch
def train_one_epoch(
    model: nn.Module,
    loader: DataLoader,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    device: torch.device,
    cfg: ExperimentConfig,
    matrix: ConfusionMatrix,
    epoch: int,
) -> dict[str, float]:
    model.train()
    loss_sum = torch.zeros((), device=device)
    seen = 0
    started = time.perf_counter()
    bar = progress(loader, desc=f"epoch {epoch + 1}/{cfg.train.epochs}")
    for step, (images, targets) in enumerate(bar):
        images = images.to(device, non_blocking=True)
        targets = targets.to(device, non_blocking=True)
        output = model(images)
        loss, logits = compute_loss(loss_fn, output, targets, cfg.loss.aux_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.optim.clip_grad_norm:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.clip_grad_norm)
        optimizer.step()
        scheduler.step()

        loss_sum += loss.detach() * images.shape[0]
        seen += images.shape[0]
        matrix.update(logits.detach(), targets)
        if (step + 1) % cfg.train.log_every == 0 or step + 1 == len(loader):
            mean_loss = float(loss_sum) / seen
            if not math.isfinite(mean_loss):
                raise NonFiniteLossError(
                    f"loss became {mean_loss} at epoch {epoch + 1}, step {step + 1}; "
                    "stopping (the last good checkpoint is kept). Lower optim.lr or set optim.clip_grad_norm."
                )
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(
                    loss=f"{mean_loss:.4f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}"
                )
    elapsed = time.perf_counter() - started
    return {"loss": float(loss_sum) / max(seen, 1), "images_per_second": seen / max(elapsed, 1e-9)}


# --------------------------------------------------------------------------- the run
def fit(cfg: ExperimentConfig, run_dir: Path | None = None, resume: bool = False) -> TrainResult:
    """Train ``cfg`` into ``run_dir`` (a new ``runs/<name>`` by default); resume from ``last``."""
    if run_dir is None:
        run_dir = new_run_dir(cfg.output_dir, cfg.name)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / CONFIG_FILE)
    seed_everything(cfg.seed, cfg.deterministic)
    device = select_device(cfg.device)

    splits: DataSplits = build_datasets(cfg, run_dir)
    num_classes = cfg.data.num_classes or splits.num_classes
    train_set = splits.datasets[cfg.data.train_split]
    val_set = splits.datasets.get(cfg.data.val_split)
    train_loader = build_loader(train_set, cfg.data, train=True, device=device, seed=cfg.seed)
    val_loader = build_loader(val_set, cfg.data, train=False, device=device) if val_set else None

    model = build_model(cfg, num_classes).to(device)
    loss_fn = build_loss(cfg.loss, num_classes, cfg.data.ignore_index).to(device)
    optimizer = build_optimizer(parameter_groups(model, cfg.optim), cfg.optim, cfg.optim.lr)
    scheduler = build_scheduler(optimizer, cfg.schedule, cfg.train.epochs, len(train_loader))
    card = model_card(cfg, splits.class_names)

    start_epoch, best_value, best_epoch = 0, None, -1
    history: list[dict[str, Any]] = []
    if resume:
        state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        start_epoch, best_value, best_epoch = (
            state["epoch"],
            state["best_value"],
            state["best_epoch"],
        )
        history = read_metrics(run_dir)[:start_epoch]
        write_metrics(run_dir, history)
        logger.info(f"resuming {run_dir} after epoch {start_epoch}")

    metric, mode = cfg.best_metric, cfg.train.best_mode
    stop = cfg.train.early_stopping
    stop_metric, stop_mode = stop.metric or metric, stop.mode or mode
    stale, stop_best, stopped_early = 0, None, False
    for record in history:
        if improved(record.get(stop_metric, math.nan), stop_best, stop_mode, stop.min_delta):
            stop_best, stale = record[stop_metric], 0
        else:
            stale += 1

    for epoch in range(start_epoch, cfg.train.epochs):
        train_loader.generator.manual_seed(cfg.seed + epoch)  # same order on resume
        lr_used = optimizer.param_groups[0]["lr"]
        train_matrix = ConfusionMatrix(num_classes, cfg.data.ignore_index)
        train_stats = train_one_epoch(
            model, train_loader, loss_fn, optimizer, scheduler, device, cfg, train_matrix, epoch
        )
        record: dict[str, Any] = {
            "epoch": epoch + 1,
            "lr": lr_used,
            "lr_end": optimizer.param_groups[0]["lr"],
        }
        record["train/loss"] = train_stats["loss"]
        record["train/images_per_second"] = train_stats["images_per_second"]
        record.update(scalar_figures("train", _headline(train_matrix.compute())))
        if val_loader is not None and (
            (epoch + 1) % cfg.train.val_every == 0 or epoch + 1 == cfg.train.epochs
        ):
            val_loss, val_matrix = evaluate(
                model,
                val_loader,
                num_classes,
                device,
                cfg.data.ignore_index,
                loss_fn,
                topk=cfg.eval.topk,
            )
            record["val/loss"] = val_loss
            record.update(scalar_figures("val", val_matrix.compute()))
        history.append(record)
        append_metrics(run_dir, record)

        value = record.get(metric, math.nan)
        is_best = improved(value, best_value, mode)
        if is_best:
            best_value, best_epoch = value, epoch + 1
        state = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "epoch": epoch + 1,
            "best_value": best_value,
            "best_epoch": best_epoch,
            "best_metric": metric,
            "rng": rng_state(),
            "card": {**card, "epochs": epoch + 1, "best_metric": metric, "best_value": best_value},
        }
        save_checkpoint(state, run_dir / "checkpoints" / "last.pt")
        if is_best:
            save_checkpoint(state, run_dir / "checkpoints" / "best.pt")
        logger.info(_epoch_line(record, cfg.task))

        if stop.enabled:
            if improved(record.get(stop_metric, math.nan), stop_best, stop_mode, stop.min_delta):
                stop_best, stale = record[stop_metric], 0
            else:
                stale += 1
                if stale >= stop.patience:
                    logger.info(f"early stopping: {stop_metric} did not improve for {stale} epochs")
                    stopped_early = True
                    break

    return TrainResult(
        run_dir=run_dir,
        best_metric=metric,
        best_value=best_value if best_value is not None else math.nan,
        best_epoch=best_epoch,
        epochs_run=len(history),
        history=history,
        stopped_early=stopped_early,
    )


def _headline(figures: dict[str, Any]) -> dict[str, Any]:
    """Training figures worth a line: scalars only (per-class lists are logged for val)."""
    return {k: v for k, v in figures.items() if isinstance(v, float)}


def _epoch_line(record: dict[str, Any], task: str) -> str:
    keys = ["train/loss", "val/loss"] + (
        ["val/accuracy", "val/top5_accuracy"]
        if task == "classification"
        else ["val/pixel_accuracy", "val/miou"]
    )
    parts = [f"{k}={record[k]:.4f}" for k in keys if isinstance(record.get(k), float)]
    return f"epoch {record['epoch']}: " + " ".join(parts) + f" lr={record['lr']:.3g}"


# --------------------------------------------------------------------------- metrics.jsonl
def append_metrics(run_dir: Path, record: dict[str, Any]) -> None:
    with (run_dir / METRICS_FILE).open("a") as f:
        f.write(json.dumps(record, allow_nan=True) + "\n")


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_metrics(run_dir: Path, records: list[dict[str, Any]]) -> None:
    (run_dir / METRICS_FILE).write_text("".join(json.dumps(r) + "\n" for r in records))
