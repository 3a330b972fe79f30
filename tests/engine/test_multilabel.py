"""task: multilabel end to end: a CSV of label lists, BCE, figures per label, threshold."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from pixelwise.checkpoint import load_checkpoint
from pixelwise.config import ConfigError, load_config
from pixelwise.data import FORMATS
from pixelwise.data.io import DataError
from pixelwise.engine import fit
from pixelwise.losses import LossConfig, MultiLabelBCE, build_loss, positive_weights
from pixelwise.metrics import MultiLabelMetrics, best_threshold


def coloured_images(root, count=48):
    """Images whose red and blue halves carry the labels ``red`` and ``blue``."""
    rows = ["path,labels"]
    rng = np.random.default_rng(0)
    (root / "img").mkdir(parents=True)
    for i in range(count):
        red, blue = i % 2, (i // 2) % 2
        pixels = rng.integers(0, 40, (8, 8, 3), dtype=np.uint8)
        pixels[:, :4, 0] += 200 * red
        pixels[:, 4:, 2] += 200 * blue
        Image.fromarray(pixels).save(root / "img" / f"{i}.png")
        labels = ";".join(name for name, on in (("red", red), ("blue", blue)) if on)
        rows.append(f"img/{i}.png,{labels}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def config(root, *overrides):
    return load_config(
        "digits",
        [
            "task=multilabel",
            "data.format=multilabel_csv",
            f"data.root={root}",
            "data.list_file=labels.csv",
            "data.image_size=[8, 8]",
            "data.augment=none",
            "data.batch_size=8",
            "data.val_fraction=0.25",
            "data.test_fraction=0",
            f"output_dir={root / 'runs'}",
            "train.epochs=3",
            "train.tensorboard=false",
            "train.report=false",
            "train.learning_gif=false",
            "schedule.warmup_epochs=0",
            "optim.name=adam",
            "optim.lr=0.01",
            "model.options={width: 4, dropout: 0.0}",
            "train.best_metric=none",  # digits.yaml names val/accuracy; the task's own: val/map
            *overrides,
        ],
    )


def test_label_lists_and_label_columns_give_multi_hot_targets(tmp_path):
    coloured_images(tmp_path, count=4)
    cfg = config(tmp_path, "data.val_fraction=0")
    splits, names = FORMATS["multilabel_csv"](cfg.data, 0, None)
    assert names == ["blue", "red"]
    assert [splits["train"].load_target(i).tolist() for i in range(4)] == [
        [0, 0],
        [0, 1],
        [1, 0],
        [1, 1],
    ]
    (tmp_path / "cols.csv").write_text("path,red,blue\nimg/0.png,0,1\nimg/1.png,1,1\n")
    splits, names = FORMATS["multilabel_csv"](
        config(tmp_path, "data.val_fraction=0", "data.list_file=cols.csv").data, 0, None
    )
    assert names == ["red", "blue"] and splits["train"][1][1].tolist() == [1, 1]
    (tmp_path / "bad.csv").write_text("path,red,blue\nimg/0.png,0,maybe\n")
    with pytest.raises(DataError, match="bad.csv:2: label 'blue' is 'maybe'"):
        FORMATS["multilabel_csv"](config(tmp_path, "data.list_file=bad.csv").data, 0, None)


def test_bce_with_positive_weights():
    targets = torch.tensor([[1, 0], [0, 0], [0, 0], [1, 1]])
    weights = positive_weights(LossConfig(pos_weight="auto"), targets)
    assert weights.tolist() == [1.0, 3.0]  # negatives / positives per label
    loss = build_loss(LossConfig(), 2, task="multilabel")
    assert isinstance(loss, MultiLabelBCE)
    logits = torch.zeros(4, 2)
    assert math.isclose(float(loss(logits, targets)), math.log(2), rel_tol=1e-6)
    weighted = build_loss(LossConfig(), 2, class_weights=weights, task="multilabel")
    assert float(weighted(logits, targets)) > float(loss(logits, targets))


def test_figures_per_label_map_and_the_threshold_of_best_macro_f1():
    from sklearn.metrics import average_precision_score

    targets = torch.tensor([[1, 0], [1, 1], [0, 1], [0, 0]])
    scores = torch.tensor([[0.9, 0.2], [0.7, 0.8], [0.3, 0.75], [0.1, 0.6]])
    metrics = MultiLabelMetrics(2, threshold=0.5)
    metrics.update(torch.logit(scores), targets)
    figures = metrics.compute()
    assert figures["precision"] == [1.0, 2 / 3] and figures["recall"] == [1.0, 1.0]
    expected = [average_precision_score(targets[:, c], scores[:, c]) for c in range(2)]
    assert figures["average_precision"] == pytest.approx(expected)
    assert figures["map"] == pytest.approx(sum(expected) / 2)
    chosen = MultiLabelMetrics(2, threshold=None)
    chosen.update(torch.logit(scores), targets)
    assert chosen.compute()["threshold"] == best_threshold(scores, targets)
    assert chosen.compute()["macro_f1"] == 1.0  # a threshold in (0.6, 0.7] separates both


def test_training_chooses_a_threshold_on_validation_and_keeps_it_in_the_card(tmp_path):
    coloured_images(tmp_path)
    result = fit(config(tmp_path, "loss.pos_weight=auto"), run_dir=tmp_path / "run")
    last = result.history[-1]
    assert result.best_metric == "val/map" and 0 <= last["val/map"] <= 1
    assert len(last["val/average_precision"]) == 2 and "train/macro_f1" in last
    card = load_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt")["card"]
    assert card["task"] == "multilabel"
    assert 0 < card["threshold"] < 1


def test_multilabel_refuses_other_loss_terms():
    with pytest.raises(ConfigError, match="binary cross-entropy"):
        load_config("digits", ["task=multilabel", "loss.terms=[{name: dice}]"])
