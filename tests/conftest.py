"""Shared fixtures: quiet output and a tiny, fast digits config."""

from __future__ import annotations

import os

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
