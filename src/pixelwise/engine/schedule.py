"""Learning-rate schedules stepped every iteration, with linear warmup.

Each schedule is a factor ``f(step)`` of the peak learning rate, wrapped in a
``LambdaLR`` so that its state (the step count) is checkpointed and resumed exactly.
Settings in epochs are converted with ``steps_per_epoch``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ..config import ScheduleConfig


def lr_factor(
    cfg: ScheduleConfig, total_steps: int, steps_per_epoch: int
) -> Callable[[int], float]:
    warmup = round(cfg.warmup_epochs * steps_per_epoch)

    def after_warmup(step: int) -> float:
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        if cfg.name == "cosine":
            return cfg.min_lr_factor + (1 - cfg.min_lr_factor) * 0.5 * (
                1 + math.cos(math.pi * progress)
            )
        if cfg.name == "poly":
            return (1 - progress) ** cfg.power
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


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, epochs: int, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    total = epochs * steps_per_epoch
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(cfg, total, steps_per_epoch))
