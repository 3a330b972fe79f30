"""Learning-rate schedules stepped every optimiser step, with linear warmup.

Each schedule is a factor ``f(step)`` of the peak learning rate, wrapped in a
``LambdaLR`` so that its state (the step count) is checkpointed and resumed exactly.
Settings in epochs (warmup, step size, milestones) are converted with
``steps_per_epoch``, the number of optimiser steps in one epoch.

- warmup: ``f = s + (1 - s) * step / warmup`` times the schedule's value at the end of
  warmup, ``s = warmup_start_factor``; ``warmup`` is ``warmup_fraction`` of all steps,
  or ``warmup_epochs`` converted and at most half of all steps (``warmup_steps``)
- cosine: ``f = m + (1 - m) * (1 + cos(pi * p)) / 2``, ``p`` the progress after warmup
  in [0, 1], ``m = min_lr_factor``
- poly: ``f = m + (1 - m) * (1 - p) ** power`` (the usual segmentation schedule; ``power``
  1 with a floor is the linear decay of fast CIFAR recipes)
- step: ``f = gamma ** floor(step / step_size)``; multistep: ``gamma ** (milestones passed)``
- constant: ``f = 1``
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ..config import OptimConfig, ScheduleConfig
from ..log import logger

MAX_WARMUP_FRACTION = 0.5
"""A warmup in epochs never takes more than this share of the training, so that a
recipe's ``warmup_epochs`` still leaves a schedule when ``train.epochs`` is small."""


def lr_factor(
    cfg: ScheduleConfig, total_steps: int, steps_per_epoch: int
) -> Callable[[int], float]:
    """``f(step)``: the multiplier of the peak learning rate at optimiser step ``step``."""
    warmup = warmup_steps(cfg, total_steps, steps_per_epoch)

    def after_warmup(step: int) -> float:
        progress = min(1.0, max(0.0, (step - warmup) / max(1, total_steps - warmup)))
        if cfg.name == "cosine":
            return cfg.min_lr_factor + (1 - cfg.min_lr_factor) * 0.5 * (
                1 + math.cos(math.pi * progress)
            )
        if cfg.name == "poly":
            return cfg.min_lr_factor + (1 - cfg.min_lr_factor) * (1 - progress) ** cfg.power
        if cfg.name == "step":
            every = max(1, round(cfg.step_epochs * steps_per_epoch))
            return cfg.gamma ** (step // every)
        if cfg.name == "multistep":
            milestones = [round(m * steps_per_epoch) for m in cfg.milestones]
            return cfg.gamma ** sum(step >= m for m in milestones)
        return 1.0

    def factor(step: int) -> float:
        if step < warmup:
            start = cfg.warmup_start_factor
            return (start + (1 - start) * step / warmup) * after_warmup(warmup)
        return after_warmup(step)

    return factor


def warmup_steps(cfg: ScheduleConfig, total_steps: int, steps_per_epoch: int) -> int:
    """Optimiser steps of linear warmup: ``warmup_fraction`` of ``total_steps``, or
    ``warmup_epochs`` converted, shortened to ``MAX_WARMUP_FRACTION`` of the training
    (with a note) where it would be longer."""
    if cfg.warmup_fraction is not None:
        return round(cfg.warmup_fraction * total_steps)
    wanted = round(cfg.warmup_epochs * steps_per_epoch)
    longest = math.floor(MAX_WARMUP_FRACTION * total_steps)
    if wanted <= longest:
        return wanted
    logger.info(
        f"schedule.warmup_epochs={cfg.warmup_epochs:g} is more than "
        f"{MAX_WARMUP_FRACTION:.0%} of the {total_steps / steps_per_epoch:g}-epoch training: "
        f"warming up over the first {longest} of its {total_steps} steps"
    )
    return longest


def steps_per_epoch(batches: int, accumulate_steps: int) -> int:
    """Optimiser steps in an epoch of ``batches`` batches: the last group may be short."""
    return max(1, math.ceil(batches / accumulate_steps))


def peak_lr(cfg: OptimConfig, global_batch_size: int) -> float:
    """``optim.lr``, or with the linear scaling rule (Goyal et al., 2017)
    ``lr * global_batch / reference_batch``, the global batch counting every process
    and every accumulated micro-batch."""
    if not cfg.scale_lr:
        return cfg.lr
    return cfg.lr * global_batch_size / cfg.reference_batch_size


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, epochs: int, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    total = epochs * steps_per_epoch
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(cfg, total, steps_per_epoch))
