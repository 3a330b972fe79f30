"""Engine fixtures: a digits config small enough for several runs per test."""

from __future__ import annotations

import pytest

from pixelwise.config import ExperimentConfig, load_config


@pytest.fixture
def small_digits(tmp_path):
    """``small_digits(*overrides)``: digits at 8x8, 10% of them, a 4-wide CNN, 2 epochs."""

    def make(*overrides: str) -> ExperimentConfig:
        base = [
            f"output_dir={tmp_path / 'runs'}",
            "train.epochs=2",
            "schedule.warmup_epochs=0",
            "train.tensorboard=false",
            "train.report=false",
            "train.learning_gif=false",
            "train.log_every=4",
            "data.image_size=[8, 8]",
            "data.crop_padding=1",
            "data.batch_size=32",
            "data.val_fraction=0.1",  # 180 training and 180 validation images
            "data.test_fraction=0.8",
            "model.options={width: 4, dropout: 0.0}",
        ]
        return load_config("digits", base + list(overrides))

    return make
