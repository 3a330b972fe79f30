"""The ``thin_structures`` recipe (issue 20) on a synthetic thin-structure set: plain
cross-entropy collapses to background, the recipe's loss (median-frequency class
weights on cross-entropy, plus soft Dice) does not.

Both runs are the recipe itself, cut to seconds (48x48 images, a U-Net of 8 base
channels, 8 epochs); the cross-entropy run changes the loss alone. Figures are the last
epoch's validation figures in the run's ``metrics.jsonl`` (inside the field of view:
the set has valid-region masks). Thresholds have margin over seeds 0-3 of data and
initialisation, where plain cross-entropy ended with a foreground recall of at most
0.01 and an IoU of 0.00, and the recipe with a recall of at least 0.83 and an IoU of at
least 0.05.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import pixelwise
from pixelwise.config import load_config
from pixelwise.run import RunDir
from thin_structures_data import foreground_fraction, make_thin_structures

FOREGROUND = 1  # data.mask_mode: binary -> background, foreground


@pytest.fixture(scope="module")
def thin_set(tmp_path_factory) -> Path:
    """40 images of 48x48 with a field of view; about 3% of the pixels foreground."""
    root = make_thin_structures(
        tmp_path_factory.mktemp("thin") / "set", count=40, size=48, field_of_view=True
    )
    assert 0.02 < foreground_fraction(root) < 0.05
    return root


def train_recipe(root: Path, out: Path, *overrides: str) -> dict[str, Any]:
    """The recipe, cut small, with ``overrides``; its last validation record."""
    cfg = load_config(
        "thin_structures",
        [
            f"data.root={root}",
            f"output_dir={out}",
            "data.valid_mask_dir=valid",
            "data.image_size=[48, 48]",
            "data.crop_size=[48, 48]",
            "data.val_fraction=0.25",
            "data.num_workers=0",
            "model.options={base_channels: 8}",
            "optim.lr=0.003",
            "schedule.warmup_epochs=0",
            "train.epochs=8",
            "train.tensorboard=false",
            "train.report=false",
            "train.learning_gif=false",
            "device=cpu",
            *overrides,
        ],
    )
    result, _ = pixelwise.fit(cfg)
    records = [r for r in RunDir(result.run_dir).metrics() if "val/iou" in r]
    return records[-1]


@pytest.mark.slow
def test_plain_cross_entropy_collapses_and_the_recipe_does_not(thin_set, tmp_path):
    recipe = load_config("thin_structures")
    assert [t.name for t in recipe.loss.terms] == ["cross_entropy", "dice"]
    assert recipe.data.class_weights == "median_frequency"

    plain = train_recipe(
        thin_set, tmp_path / "ce", "loss.terms=[{name: cross_entropy}]", "data.class_weights=null"
    )
    # all background: high accuracy, (almost) no foreground found
    assert plain["val/pixel_accuracy"] > 0.9
    assert plain["val/recall"][FOREGROUND] < 0.1
    assert plain["val/iou"][FOREGROUND] < 0.02

    kept = train_recipe(thin_set, tmp_path / "recipe")  # the recipe's own loss and weights
    assert kept["val/recall"][FOREGROUND] > 0.5
    assert kept["val/iou"][FOREGROUND] > 0.03
    assert kept["val/iou"][FOREGROUND] > plain["val/iou"][FOREGROUND] + 0.03
