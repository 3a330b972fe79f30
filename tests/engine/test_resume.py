"""Exact resume: a run interrupted after epoch k and resumed equals the uninterrupted run.

Same final weights (bit for bit), same metrics.jsonl figures (throughput aside), same
learning rate after the resume, on CPU with a fixed seed, augmentation on and
``num_workers=0``.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from pixelwise.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from pixelwise.config import ConfigError
from pixelwise.engine import fit, schedule, trainer
from pixelwise.engine.resume import rng_state, set_rng_state
from pixelwise.run import RunDir

TIMING = ("train/images_per_second",)


class Interrupted(Exception):
    pass


def _interrupt_after(monkeypatch, epoch: int) -> None:
    """The process dies right after the checkpoints of ``epoch`` are written."""
    original = trainer.save_run_checkpoints

    def save_then_die(parts, state, *args, **kwargs):
        original(parts, state, *args, **kwargs)
        if state["epoch"] == epoch:
            raise Interrupted

    monkeypatch.setattr(trainer, "save_run_checkpoints", save_then_die)


def _figures(run_dir):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in RunDir(run_dir).metrics()]


SCENARIOS = {
    "sgd-augment-dropout": [
        "data.rotation=15",
        "data.augment=default",
        "model.options={width: 4, dropout: 0.2}",
        "schedule.warmup_epochs=1",
    ],
    "adamw-ema-accumulate-bf16": [
        "optim.name=adamw",
        "optim.lr=0.01",
        "optim.accumulate_steps=2",
        "optim.clip_grad_norm=1.0",
        "train.ema=true",
        "train.ema_decay=0.9",
        "train.amp=bf16",
        "schedule.name=step",
        "schedule.step_epochs=1",
        "model.options={width: 4, dropout: 0.2}",
    ],
    "tensor-loader": [
        "data.loader=tensor",
        "data.augment=default",
        "data.crop_padding_mode=reflect",
        "train.lookahead=true",
        "train.lookahead_every=2",
        "model.options={width: 4, dropout: 0.2}",
    ],
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_interrupted_and_resumed_run_equals_uninterrupted(
    small_digits, tmp_path, monkeypatch, scenario
):
    cfg = small_digits("train.epochs=3", "data.num_workers=0", *SCENARIOS[scenario])
    whole = fit(cfg, run_dir=tmp_path / "whole")

    _interrupt_after(monkeypatch, epoch=1)
    with pytest.raises(Interrupted):
        fit(cfg, run_dir=tmp_path / "cut")
    monkeypatch.undo()
    assert len(RunDir(tmp_path / "cut").metrics()) == 1
    resumed = fit(cfg, run_dir=tmp_path / "cut", resume=True)

    assert _figures(tmp_path / "cut") == _figures(tmp_path / "whole")
    assert [r["lr"] for r in resumed.history] == [r["lr"] for r in whole.history]
    a = load_checkpoint(tmp_path / "whole" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pt")
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert a["step"] == b["step"]
    assert a["optimizer"]["param_groups"][0]["lr"] == b["optimizer"]["param_groups"][0]["lr"]
    if a["ema"] is not None:
        for key, value in a["ema"]["model"].items():
            assert torch.equal(value, b["ema"]["model"][key]), key
    assert (resumed.best_value, resumed.best_epoch) == (whole.best_value, whole.best_epoch)


def test_resume_with_another_model_says_so_in_one_sentence(small_digits, tmp_path):
    fit(small_digits("train.epochs=1"), run_dir=tmp_path / "run")
    other = small_digits("train.epochs=2", "model.name=resnet20", "model.options={}")
    with pytest.raises(ConfigError, match="model.name: 'small_cnn' -> 'resnet20'"):
        fit(other, run_dir=tmp_path / "run", resume=True)  # the config check comes first
    with pytest.raises(
        CheckpointError, match="holds a 'small_cnn' model, but this run builds 'resnet20'"
    ):
        fit(other, run_dir=tmp_path / "run", resume=True, allow_config_changes=True)


def test_cli_resume_continues_the_run_in_run_dir(tmp_path, capsys):
    from pixelwise.cli import main

    overrides = [
        f"output_dir={tmp_path / 'runs'}",
        "train.tensorboard=false",
        "train.report=false",
        "schedule.warmup_epochs=0",
        "data.image_size=[8, 8]",
        "data.val_fraction=0.1",
        "data.test_fraction=0.1",
        "model.options={width: 4, dropout: 0.0}",
    ]
    run_dir = tmp_path / "run"
    assert main(["train", "digits", *overrides, "train.epochs=1", "--run-dir", str(run_dir)]) == 0
    args = ["train", "digits", *overrides, "train.epochs=2", "--run-dir", str(run_dir)]
    assert main([*args, "--resume"]) == 2  # train.epochs 1 -> 2 changes the result
    assert "train.epochs: 1 -> 2" in capsys.readouterr().err
    assert main([*args, "--resume", "--allow-config-changes"]) == 0
    records = RunDir(run_dir).metrics()
    assert [r["epoch"] for r in records] == [1, 2]
    assert records[1]["lr"] > 0  # the schedule was recomputed for 2 epochs, not run at lr 0
    assert "run directory:" in capsys.readouterr().out
    assert main(["train", "digits", "--resume", "--run-dir", str(tmp_path / "none")]) == 2


def test_rng_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    save_checkpoint({"model": {}, "rng": rng_state()}, tmp_path / "c.pt")
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(2), np.random.seed(2), random.seed(2)
    set_rng_state(load_checkpoint(tmp_path / "c.pt")["rng"])
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1])
    assert random.random() == expected[2]


class FakeClock:
    """``schedule.now`` advancing one second at every reading: the training clock reads
    it when it starts, at every optimiser step and when it stops."""

    def __init__(self) -> None:
        self.time = 0.0

    def __call__(self) -> float:
        self.time += 1.0
        return self.time


def test_a_time_budget_stops_mid_epoch_at_the_floor_and_resumes_exactly(
    small_digits, tmp_path, monkeypatch
):
    # 5 steps per epoch; epoch 1 spends 6 fake seconds (5 steps and the end of the
    # epoch), the 8.4-second budget is spent by step 3 of epoch 2, long before 5 epochs.
    cfg = small_digits(
        "train.epochs=5",
        "train.max_minutes=0.14",
        "schedule.min_lr_factor=0.1",
        "data.num_workers=0",
        "schedule.warmup_fraction=0.2",
        "schedule.warmup_epochs=0",
    )
    monkeypatch.setattr(schedule, "now", FakeClock())
    whole = fit(cfg, run_dir=tmp_path / "whole")
    assert whole.epochs_run == 2
    assert whole.history[-1]["train/samples"] == 3 * 32  # stopped after step 3 of epoch 2
    assert "val/accuracy" in whole.history[-1]  # the last (budget) epoch is validated
    assert whole.history[-1]["lr_end"] == pytest.approx(0.1 * cfg.optim.lr)  # the floor
    a = load_checkpoint(tmp_path / "whole" / "checkpoints" / "last.pt")
    assert a["step"] == 8
    assert a["scheduler"]["elapsed_seconds"] == 10.0  # the budget, and the epoch's end

    monkeypatch.setattr(schedule, "now", FakeClock())
    _interrupt_after(monkeypatch, epoch=1)
    with pytest.raises(Interrupted):
        fit(cfg, run_dir=tmp_path / "cut")
    monkeypatch.undo()
    monkeypatch.setattr(schedule, "now", FakeClock())  # a new process: another time origin
    resumed = fit(cfg, run_dir=tmp_path / "cut", resume=True)
    assert resumed.epochs_run == 2
    assert _figures(tmp_path / "cut") == _figures(tmp_path / "whole")
    b = load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pt")
    assert b["step"] == 8 and b["scheduler"]["elapsed_seconds"] == 10.0
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    # resumed once more with the budget spent: nothing left to train
    again = fit(cfg, run_dir=tmp_path / "cut", resume=True)
    assert again.epochs_run == 2
    assert load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pt")["step"] == 8


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_a_run_killed_mid_epoch_resumes_from_its_step_bit_identical(
    small_digits, tmp_path, monkeypatch, scenario
):
    # 5 batches an epoch; a step checkpoint every 2 optimiser steps. Killed right after
    # the one taken inside epoch 2, the resumed run skips the batches it holds.
    cfg = small_digits(
        "train.epochs=3", "data.num_workers=0", "train.save_every_steps=2", *SCENARIOS[scenario]
    )
    whole = fit(cfg, run_dir=tmp_path / "whole")

    original = trainer.save_step_checkpoint
    killed_at = []

    def save_then_die(state, run):
        original(state, run)
        if state["epoch"] == 1:
            killed_at.append(state["batch"])
            raise Interrupted

    monkeypatch.setattr(trainer, "save_step_checkpoint", save_then_die)
    with pytest.raises(Interrupted):
        fit(cfg, run_dir=tmp_path / "cut")
    monkeypatch.undo()
    assert 0 < killed_at[0] < 5  # inside epoch 2
    assert load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pt")["batch"] == killed_at[0]
    resumed = fit(cfg, run_dir=tmp_path / "cut", resume=True)

    assert [r["epoch"] for r in RunDir(tmp_path / "cut").metrics()] == [1, 2, 3]
    a = load_checkpoint(tmp_path / "whole" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pt")
    assert a["step"] == b["step"]
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    if a["ema"] is not None:
        for key, value in a["ema"]["model"].items():
            assert torch.equal(value, b["ema"]["model"][key]), key
    assert _figures(tmp_path / "cut")[2] == _figures(tmp_path / "whole")[2]  # epoch 3 whole
    assert resumed.history[-1]["val/loss"] == whole.history[-1]["val/loss"]
