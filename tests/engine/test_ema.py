"""Exponential moving average of weights: the update, and its own figures and checkpoint."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pixelwise.checkpoint import load_checkpoint
from pixelwise.engine import fit
from pixelwise.engine.ema import Lookahead, ModelEma


def test_update_is_a_warmed_up_exponential_average_and_buffers_are_copied():
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    ema = ModelEma(model, decay=0.9)
    start = model[0].weight.detach().clone()
    with torch.no_grad():
        model[0].weight.add_(1.0)
        model[1].running_mean.fill_(3.0)
    decay = ema.current_decay()
    assert decay == 0.1  # (1 + 0) / (10 + 0): the early average forgets the initialisation
    ema.update(model)
    assert torch.allclose(ema.module[0].weight, decay * start + (1 - decay) * (start + 1))
    assert torch.equal(ema.module[1].running_mean, torch.full((2,), 3.0))
    assert ModelEma(model, 0.9).current_decay() < 0.9
    ema.updates = 10_000
    assert ema.current_decay() == 0.9
    again = ModelEma(nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)), 0.9)
    again.load_state_dict(ema.state_dict())
    assert again.updates == 10_000 and torch.equal(again.module[0].weight, ema.module[0].weight)


def test_ema_is_evaluated_and_checkpointed_apart(small_digits, tmp_path):
    cfg = small_digits(
        "train.ema=true", "train.ema_decay=0.5", "train.best_metric=val_ema/accuracy"
    )
    result = fit(cfg, run_dir=tmp_path / "run")
    record = result.history[-1]
    assert "val_ema/accuracy" in record and "val/accuracy" in record
    folder = result.run_dir / "checkpoints"
    last, ema, best = (load_checkpoint(folder / f"{n}.pt") for n in ("last", "ema", "best"))
    for key, value in last["ema"]["model"].items():
        assert torch.equal(value, ema["model"][key])
    assert not all(torch.equal(v, ema["model"][k]) for k, v in last["model"].items())
    # best.pt (selected on val_ema/) holds the averaged weights of its epoch as its model.
    assert best["epoch"] == result.best_epoch
    assert all(torch.equal(v, best["ema"]["model"][k]) for k, v in best["model"].items())


def test_lookahead_pulls_every_k_steps_with_airbenchs_ramp_and_ends_on_the_average():
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    lookahead = Lookahead(model, total_steps=10, decay=0.5, every=5)
    weights = []
    for step in range(1, 11):
        with torch.no_grad():
            model.weight.add_(1.0)  # an "optimiser step"
        lookahead.after_step(model, step)
        weights.append(model.weight.item())
    # step 5: decay 0.5^5 * (5/10)^3 = 1/256 of the average (0) kept: 5 * 255/256
    assert weights[4] == pytest.approx(5 * (1 - 0.5**5 * 0.125))
    assert weights[:4] == [1.0, 2.0, 3.0, 4.0]  # untouched between pulls
    # step 10: the decay is 0.5^5; the model then is the average itself
    expected = weights[4] * 0.5**5 + (weights[4] + 5) * (1 - 0.5**5)
    assert weights[9] == pytest.approx(expected)
    assert torch.equal(lookahead.average["weight"], model.weight.detach())


def test_a_run_with_lookahead_trains_and_its_checkpoint_holds_the_average(small_digits, tmp_path):
    cfg = small_digits("train.epochs=3", "train.lookahead=true", "train.lookahead_every=2")
    result = fit(cfg, run_dir=tmp_path / "run")
    assert result.history[-1]["val/accuracy"] > 0.15  # chance: 0.1
    last = load_checkpoint(result.run_dir / "checkpoints" / "last.pt")
    for key, value in last["lookahead"]["average"].items():
        assert torch.equal(value, last["model"][key]), key  # the model ends as the average
