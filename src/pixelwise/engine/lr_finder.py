"""The learning-rate range test (Smith, 2015, "Cyclical Learning Rates for Training
Neural Networks"; Lightning's ``lr_find``): train on mini-batches with a learning rate
growing exponentially from ``start`` to ``end``, read the loss against the rate.

The loss is smoothed with a bias-corrected exponential moving average (``beta``); the
test stops when the smoothed loss exceeds ``DIVERGE_FACTOR`` times the best so far (or
is not finite). The suggestion is the rate of the steepest descent of the smoothed loss
against log(lr), searched between the first tenth of the points (the average is still
settling there) and the lowest loss; with too few points for a slope, the rate of the
lowest loss divided by 10. Nothing is kept: the model is built for the test and thrown
away, no run directory is written (``pixelwise tune lr`` draws the plot).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..config import ExperimentConfig
from ..data import build_loader
from ..errors import UserError
from ..runtime import seed_everything
from . import distributed as ddp
from .build import TrainParts, build_parts
from .finetune import keep_frozen_norms_in_eval
from .trainer import compute_loss, read_data

DIVERGE_FACTOR = 4.0
"""The test stops when the smoothed loss is this many times the best one."""


@dataclass
class LrRangeResult:
    lrs: list[float]  # the rates tried, one per mini-batch, until the test stopped
    losses: list[float]  # the loss of each mini-batch
    smoothed: list[float]  # their bias-corrected moving average
    suggestion: float
    method: Literal["steepest descent", "minimum / 10"]
    diverged: bool  # stopped before ``end``: the smoothed loss blew up

    @property
    def best_lr(self) -> float:
        """The rate at the lowest smoothed loss."""
        return self.lrs[int(np.argmin(self.smoothed))]


def exponential_lrs(start: float, end: float, steps: int) -> list[float]:
    """``steps`` rates from ``start`` to ``end``, evenly spaced on a log scale."""
    if not 0 < start < end or steps < 2:
        raise UserError(
            f"the range test needs 0 < --start < --end and --steps >= 2, got "
            f"--start {start:g} --end {end:g} --steps {steps}"
        )
    return [start * (end / start) ** (i / (steps - 1)) for i in range(steps)]


def suggest(
    lrs: list[float], smoothed: list[float]
) -> tuple[float, Literal["steepest descent", "minimum / 10"]]:
    """The steepest descent of ``smoothed`` against log(lr) before its minimum, or the
    rate of the minimum over 10 where there are too few points for a slope."""
    lowest = int(np.argmin(smoothed))
    first = len(lrs) // 10
    if lowest - first >= 2:
        window = slice(first, lowest + 1)
        slopes = np.gradient(np.asarray(smoothed[window]), np.log10(lrs[window]))
        return lrs[first + int(np.argmin(slopes))], "steepest descent"
    return lrs[lowest] / 10, "minimum / 10"


def batches_forever(loader: DataLoader) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The loader's batches, epoch after epoch (``itertools.cycle`` would keep them all)."""
    while True:
        yield from loader


def range_test(
    parts: TrainParts,
    loader: DataLoader,
    start: float = 1e-7,
    end: float = 10.0,
    steps: int = 100,
    beta: float = 0.98,
) -> LrRangeResult:
    """One optimiser step per mini-batch at each of ``exponential_lrs(start, end,
    steps)`` (times each parameter group's ``lr_mult``), until the end or divergence.
    ``parts`` are trained in place: pass parts built for the test."""
    lrs = exponential_lrs(start, end, steps)
    model, optimizer, device = parts.model, parts.optimizer, parts.device
    model.train()
    keep_frozen_norms_in_eval(model)
    tried: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    average, best, diverged = 0.0, math.inf, False
    batches = batches_forever(loader)
    for i, lr in enumerate(lrs):
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_mult", 1.0)
        images, targets = next(batches)
        images, targets = images.to(device), targets.to(device)
        optimizer.zero_grad(set_to_none=True)
        with parts.precision.autocast():
            loss, _ = compute_loss(parts, parts.forward_model(images), images, targets)
        value = float(loss.detach())
        if not math.isfinite(value):
            diverged = True
            break
        parts.precision.backward(loss)
        parts.precision.step(optimizer, model.parameters(), parts.cfg.optim.clip_grad_norm)
        average = beta * average + (1 - beta) * value
        current = average / (1 - beta ** (i + 1))
        tried.append(lr)
        losses.append(value)
        smoothed.append(current)
        best = min(best, current)
        if current > DIVERGE_FACTOR * best:
            diverged = True
            break
    if not tried:
        raise UserError(
            f"the loss was not finite at the first rate ({start:g}): lower --start, or "
            "check the data and the model"
        )
    suggestion, method = suggest(tried, smoothed)
    return LrRangeResult(tried, losses, smoothed, suggestion, method, diverged)


def find_lr(
    cfg: ExperimentConfig, start: float = 1e-7, end: float = 10.0, steps: int = 100
) -> LrRangeResult:
    """The range test on ``cfg``'s training data, model, loss and optimiser, built as a
    run would build them (the splits carved in a temporary folder) and then dropped."""
    exponential_lrs(start, end, steps)  # refuse a bad range before reading any data
    ctx = ddp.setup(cfg.device)
    try:
        seed_everything(cfg.seed, cfg.deterministic)
        with tempfile.TemporaryDirectory(prefix="pixelwise-lr-range-") as scratch:
            splits, class_weights = read_data(cfg, Path(scratch))
        num_classes = cfg.data.num_classes or splits.num_classes
        train_set = splits.datasets[cfg.data.train_split]
        loader = build_loader(train_set, cfg.data, True, ctx.device, seed=cfg.seed)
        parts = build_parts(cfg, num_classes, ctx, len(loader), class_weights, loader)
        return range_test(parts, loader, start, end, steps)
    finally:
        ddp.cleanup(ctx)
