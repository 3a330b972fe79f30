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

With a time budget (``train.max_minutes``, ``BudgetScheduler``) the progress ``p`` is the
elapsed training time over the budget instead of the step over all steps, so that the
run ends at its budget with the learning rate at its floor whatever its throughput.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch

from ..config import OptimConfig, ScheduleConfig
from ..log import logger
from .distributed import DistContext, all_reduce_sum

MAX_WARMUP_FRACTION = 0.5
"""A warmup in epochs never takes more than this share of the training, so that a
recipe's ``warmup_epochs`` still leaves a schedule when ``train.epochs`` is small."""


def lr_factor(
    cfg: ScheduleConfig, total_steps: int, steps_per_epoch: int
) -> Callable[[int], float]:
    """``f(step)``: the multiplier of the peak learning rate at optimiser step ``step``."""
    warmup = warmup_steps(cfg, total_steps, steps_per_epoch)

    def after_warmup(step: int) -> float:
        if cfg.name == "step":
            every = max(1, round(cfg.step_epochs * steps_per_epoch))
            return cfg.gamma ** (step // every)
        if cfg.name == "multistep":
            milestones = [round(m * steps_per_epoch) for m in cfg.milestones]
            return cfg.gamma ** sum(step >= m for m in milestones)
        return decay(cfg, (step - warmup) / max(1, total_steps - warmup))

    def factor(step: int) -> float:
        if step < warmup:
            start = cfg.warmup_start_factor
            return (start + (1 - start) * step / warmup) * after_warmup(warmup)
        return after_warmup(step)

    return factor


def decay(cfg: ScheduleConfig, progress: float) -> float:
    """The factor after warmup of the schedules defined by progress (cosine, poly,
    constant), ``progress`` clamped to [0, 1]."""
    progress = min(1.0, max(0.0, progress))
    if cfg.name == "cosine":
        return cfg.min_lr_factor + (1 - cfg.min_lr_factor) * 0.5 * (
            1 + math.cos(math.pi * progress)
        )
    if cfg.name == "poly":
        return cfg.min_lr_factor + (1 - cfg.min_lr_factor) * (1 - progress) ** cfg.power
    return 1.0


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
    optimizer: torch.optim.Optimizer,
    cfg: ScheduleConfig,
    epochs: int,
    steps_per_epoch: int,
    max_minutes: float | None = None,
    sync: Callable[[float], float] | None = None,
) -> torch.optim.lr_scheduler.LambdaLR:
    """The step schedule over ``epochs``, or with ``max_minutes`` the schedule over that
    time budget (``sync`` agrees on the elapsed seconds across processes)."""
    if max_minutes is not None:
        return BudgetScheduler(optimizer, cfg, max_minutes * 60, steps_per_epoch, sync)
    total = epochs * steps_per_epoch
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(cfg, total, steps_per_epoch))


def budget_sync(ctx: DistContext) -> Callable[[float], float] | None:
    """Under DDP, the mean of the processes' elapsed seconds: one figure every process
    agrees on, so that they use the same learning rate and stop at the same step."""
    if not ctx.enabled:
        return None

    def mean(seconds: float) -> float:
        total = all_reduce_sum(torch.tensor([seconds], dtype=torch.float64, device=ctx.device), ctx)
        return float(total[0]) / ctx.world_size

    return mean


def now() -> float:
    """The training clock's time source, in seconds (tests replace it with a fake)."""
    return time.perf_counter()


class BudgetScheduler(torch.optim.lr_scheduler.LambdaLR):
    """The schedule of a time budget (``train.max_minutes``): the progress is the
    elapsed *training* seconds over the budget, so the last step before the budget runs
    out leaves the learning rate at its floor.

    The clock runs between ``start_clock`` and ``stop_clock`` (the trainer brackets the
    training steps with them: validation and checkpoints do not count) and is read at
    every ``step``; the factor reads the time of the last step (``step_seconds``), so that
    it gives the same rate when recomputed after a resume. ``elapsed_seconds`` is part of
    ``state_dict``, so a resumed run continues the budget where it stopped. A warmup in epochs still counts optimiser
    steps (and ends at the latest after ``MAX_WARMUP_FRACTION`` of the budget);
    ``warmup_fraction`` is a share of the budget; the decay then spans the rest of it.
    Only the schedules defined by progress (cosine, poly, constant) are allowed.
    """

    _NOT_SAVED = ("budget_seconds", "_cfg", "_warmup_steps", "_sync", "_running_since")

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        cfg: ScheduleConfig,
        budget_seconds: float,
        steps_per_epoch: int,
        sync: Callable[[float], float] | None = None,
    ) -> None:
        if cfg.name not in ("cosine", "poly", "constant"):
            raise ValueError(f"a time budget needs a schedule defined by progress, not {cfg.name}")
        self.budget_seconds = budget_seconds
        self.elapsed_seconds = 0.0
        self.step_seconds = 0.0  # elapsed at the last step: what the factor reads
        self.warmup_end_seconds: float | None = None  # elapsed seconds when warmup ended
        self._cfg = cfg
        self._warmup_steps = round(cfg.warmup_epochs * steps_per_epoch)
        self._sync = sync
        self._running_since: float | None = None

        def factor(step: int) -> float:
            if self.warmup_end_seconds is None:
                start = cfg.warmup_start_factor
                return start + (1 - start) * self.warmup_progress(step)
            rest = max(self.budget_seconds - self.warmup_end_seconds, 1e-9)
            return decay(cfg, (self.step_seconds - self.warmup_end_seconds) / rest)

        super().__init__(optimizer, factor)

    @property
    def spent(self) -> bool:
        """The budget is used up: the run stops after the current optimiser step."""
        return self.elapsed_seconds >= self.budget_seconds

    def warmup_progress(self, step: int) -> float:
        """How far the warmup is, in [0, 1] (1: over)."""
        cfg = self._cfg
        if cfg.warmup_fraction is not None:
            if cfg.warmup_fraction == 0:
                return 1.0
            return min(1.0, self.step_seconds / (cfg.warmup_fraction * self.budget_seconds))
        if self._warmup_steps == 0:
            return 1.0
        longest = MAX_WARMUP_FRACTION * self.budget_seconds
        return min(1.0, max(step / self._warmup_steps, self.step_seconds / longest))

    def start_clock(self) -> None:
        self._running_since = now()

    def stop_clock(self) -> None:
        self._tick()
        self._running_since = None

    def _tick(self) -> None:
        if self._running_since is None:
            return
        moment = now()
        self.elapsed_seconds += moment - self._running_since
        self._running_since = moment
        if self._sync is not None:  # every process must use the same learning rate
            self.elapsed_seconds = self._sync(self.elapsed_seconds)

    def step(self, epoch: int | None = None) -> None:  # noqa: ARG002 - LambdaLR's signature
        self._tick()
        self.step_seconds = self.elapsed_seconds
        if self.warmup_end_seconds is None and self.warmup_progress(self.last_epoch + 1) >= 1:
            self.warmup_end_seconds = self.step_seconds
        super().step()

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        for key in self._NOT_SAVED:
            state.pop(key, None)
        return state
