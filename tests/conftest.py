"""Shared fixtures: quiet output and a tiny, fast digits config."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("PIXELWISE_QUIET", "1")

if os.environ.get("PYTEST_XDIST_WORKER"):
    # One intra-op thread per worker: two workers on two cores, not four threads fighting.
    import torch

    torch.set_num_threads(1)


@pytest.fixture
def tiny_digits_overrides(tmp_path) -> list[str]:
    """The digits quick start cut to one short epoch: seconds, not minutes."""
    return [
        f"output_dir={tmp_path / 'runs'}",
        "train.epochs=1",
        "schedule.warmup_epochs=0",
        "train.tensorboard=false",
        "train.report=false",
        "data.batch_size=64",
        "model.options={width: 8, dropout: 0.0}",
    ]


@dataclass
class SharedRun:
    """A trained run several test modules read: its config, directory and results."""

    cfg: Any
    run_dir: Path
    result: Any  # TrainResult
    test: Any  # EvalResult of the best checkpoint on the test split

    @property
    def best_epoch(self) -> int:
        return self.result.best_epoch


@pytest.fixture(scope="session")
def trained_digits(tmp_path_factory) -> SharedRun:
    """One tiny trained digits run for the whole session (two epochs at the digits' own
    8x8 size, with its test evaluation and plots): the CLI, eval, report and predict
    tests read it instead of each training their own. Tests may add files to it (an
    evaluation, a report); none removes what another needs."""
    from pixelwise.config import load_config
    from pixelwise.experiment import run_experiment

    cfg = load_config(
        "digits",
        [
            f"output_dir={tmp_path_factory.mktemp('shared-runs')}",
            "train.epochs=2",
            "schedule.warmup_epochs=0",
            "train.tensorboard=false",
            "train.report=false",
            "data.batch_size=64",
            "data.image_size=[8, 8]",
            "model.options={width: 8, dropout: 0.0}",
        ],
    )
    result, test = run_experiment(cfg)
    return SharedRun(cfg, result.run_dir, result, test)
