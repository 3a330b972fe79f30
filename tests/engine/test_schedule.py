"""Learning-rate schedules: warmup, cosine, poly, step, multistep, constant, scaling rule."""

from __future__ import annotations

import logging
import math

import pytest
import torch

from pixelwise.config import ConfigError, OptimConfig, ScheduleConfig, load_config
from pixelwise.engine import schedule
from pixelwise.engine.schedule import (
    BudgetScheduler,
    build_scheduler,
    lr_factor,
    peak_lr,
    steps_per_epoch,
    warmup_steps,
)


def test_linear_warmup_then_cosine_to_the_floor():
    f = lr_factor(
        ScheduleConfig("cosine", warmup_epochs=1, warmup_start_factor=0.1, min_lr_factor=0.05),
        100,
        10,
    )
    assert f(0) == pytest.approx(0.1)
    assert f(5) == pytest.approx(0.55)
    assert f(10) == pytest.approx(1.0)
    assert f(55) == pytest.approx(0.05 + 0.95 * 0.5)
    assert f(100) == pytest.approx(0.05)


def test_poly_step_multistep_constant():
    assert lr_factor(ScheduleConfig("poly", power=0.9), 100, 10)(50) == pytest.approx(0.5**0.9)
    step = lr_factor(ScheduleConfig("step", step_epochs=2, gamma=0.1), 100, 10)
    assert [step(s) for s in (0, 19, 20, 40)] == pytest.approx([1, 1, 0.1, 0.01])
    multi = lr_factor(ScheduleConfig("multistep", milestones=[1.5, 3]), 100, 10)
    assert [multi(s) for s in (14, 15, 29, 30)] == pytest.approx([1, 0.1, 0.1, 0.01])
    assert lr_factor(ScheduleConfig("constant"), 100, 10)(77) == 1.0


def test_linear_decay_to_a_floor_after_warmup_is_airbench_triangle():
    # cifar10_fast: from 0.2 up to 1 over the first 23% of steps, then down to 0.07.
    cfg = ScheduleConfig("poly", power=1.0, warmup_epochs=2.3, warmup_start_factor=0.2)
    cfg.min_lr_factor = 0.07
    f = lr_factor(cfg, 100, 10)
    assert f(0) == pytest.approx(0.2)
    assert f(23) == pytest.approx(1.0)
    assert f(23 + 77 // 2) == pytest.approx(0.07 + 0.93 * (1 - 38 / 77))
    assert f(100) == pytest.approx(0.07)


def test_steps_per_epoch_and_linear_scaling_rule():
    assert steps_per_epoch(10, 1) == 10
    assert steps_per_epoch(10, 4) == 3  # the last group is short, and still steps
    assert peak_lr(OptimConfig(lr=0.1), 1024) == 0.1
    assert peak_lr(
        OptimConfig(lr=0.1, scale_lr=True, reference_batch_size=256), 1024
    ) == pytest.approx(0.4)


def test_scheduler_state_resumes_the_exact_learning_rate():
    def make():
        param = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([{"params": [param], "lr": 0.2, "lr_mult": 1.0}], lr=0.2)
        return opt, build_scheduler(opt, ScheduleConfig("cosine", warmup_epochs=1), 5, 7)

    opt, sched = make()
    for _ in range(12):
        opt.step()
        sched.step()
    again_opt, again = make()
    again_opt.load_state_dict(opt.state_dict())
    again.load_state_dict(sched.state_dict())
    for _ in range(5):
        opt.step(), sched.step(), again_opt.step(), again.step()
        assert again_opt.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    expected = 0.2 * 0.5 * (1 + math.cos(math.pi * (17 - 7) / (35 - 7)))
    assert opt.param_groups[0]["lr"] == pytest.approx(expected)


def test_a_warmup_longer_than_half_the_training_is_shortened_with_a_note(caplog, monkeypatch):
    # a recipe's warmup_epochs=2 with train.epochs=1: warm up over the first half
    monkeypatch.setattr(logging.getLogger("pixelwise"), "propagate", True)  # the CLI turns it off
    with caplog.at_level("INFO", logger="pixelwise"):
        f = lr_factor(ScheduleConfig("cosine", warmup_epochs=2, warmup_start_factor=0.1), 10, 10)
    assert "schedule.warmup_epochs=2 is more than 50% of the 1-epoch training" in caplog.text
    assert warmup_steps(ScheduleConfig(warmup_epochs=2), 10, 10) == 5
    assert f(0) == pytest.approx(0.1)
    assert f(5) == pytest.approx(1.0)  # the peak, then the cosine decay
    assert f(10) == pytest.approx(0.0)
    assert warmup_steps(ScheduleConfig(warmup_epochs=1), 100, 10) == 10  # short ones are kept


def test_warmup_fraction_scales_with_the_training():
    cfg = ScheduleConfig("poly", power=1.0, warmup_fraction=0.23, warmup_start_factor=0.2)
    assert warmup_steps(cfg, 100, 10) == 23
    assert warmup_steps(cfg, 1000, 10) == 230
    assert lr_factor(cfg, 100, 10)(23) == pytest.approx(1.0)


class FakeClock:
    """``schedule.now`` advancing one second at every reading."""

    def __init__(self) -> None:
        self.time = 100.0

    def __call__(self) -> float:
        self.time += 1.0
        return self.time


def test_a_time_budget_ends_at_its_floor_and_its_state_continues(monkeypatch):
    monkeypatch.setattr(schedule, "now", FakeClock())
    cfg = ScheduleConfig("cosine", warmup_fraction=0.2, min_lr_factor=0.1)

    def make():
        param = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([param], lr=1.0)
        return opt, build_scheduler(opt, cfg, epochs=99, steps_per_epoch=7, max_minutes=10 / 60)

    opt, sched = make()
    assert isinstance(sched, BudgetScheduler)
    sched.start_clock()
    lrs = []
    while not sched.spent:
        opt.step()
        sched.step()  # one fake second per step
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs[0] == pytest.approx(0.01 + 0.99 * 0.5)  # 1 of the 2 warmup seconds
    assert lrs[1] == pytest.approx(1.0)
    assert lrs[5] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 4 / 8)))
    assert len(lrs) == 10 and lrs[-1] == pytest.approx(0.1)  # the floor, at the budget
    sched.stop_clock()

    opt, sched = make()
    sched.start_clock()
    for _ in range(4):
        opt.step(), sched.step()
    sched.stop_clock()  # validation and checkpoints run on the stopped clock
    saved = torch.load(_roundtrip(sched.state_dict()), weights_only=True)
    assert saved["elapsed_seconds"] == 5.0  # 4 steps and the rest of the epoch
    again_opt, again = make()
    again.load_state_dict(saved)
    again.start_clock()
    steps = 0
    while not again.spent:
        again_opt.step(), again.step()
        steps += 1
    assert steps == 5 and again_opt.param_groups[0]["lr"] == pytest.approx(0.1)


def _roundtrip(state):
    import io

    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return buffer


def test_a_time_budget_refuses_schedules_in_epochs():
    with pytest.raises(ConfigError, match="'train.max_minutes' defines the schedule in time"):
        load_config("digits", ["train.max_minutes=5", "schedule.name=step"])
    with pytest.raises(ConfigError, match="'train.max_minutes' must be positive"):
        load_config("digits", ["train.max_minutes=0"])
