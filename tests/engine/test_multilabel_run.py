"""A trained ``task: multilabel`` run through every command: train (which evaluates the
test split), eval, predict, data check, data stats and the report."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from test_multilabel import coloured_images  # the same images, shared

import pixelwise
from pixelwise.cli import main
from pixelwise.cli._common import figures_table
from pixelwise.inference import MultiLabel

OVERRIDES = [
    "task=multilabel",
    "data.format=multilabel_csv",
    "data.list_file=labels.csv",
    "data.image_size=[8, 8]",
    "data.augment=none",
    "data.batch_size=8",
    "data.val_fraction=0.25",
    "data.test_fraction=0.25",
    "train.epochs=4",
    "train.tensorboard=false",
    "train.learning_gif=false",
    "schedule.warmup_epochs=0",
    "optim.name=adam",
    "optim.lr=0.02",
    "model.options={width: 4, dropout: 0.0}",
    "train.best_metric=none",
]


def two_attributes(root, count=64):
    """Images whose left half is red (label ``red``) and right half blue (``blue``),
    independently: test_multilabel's fixture, more of them."""
    return coloured_images(root, count)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = two_attributes(tmp_path_factory.mktemp("multilabel"))
    run = root / "run"
    args = [f"data.root={root}", f"output_dir={root / 'runs'}", *OVERRIDES]
    assert main(["-q", "train", "digits", *args, "--run-dir", str(run)]) == 0
    return root, run, args


def test_training_evaluates_the_test_split_at_the_cards_threshold(trained):
    _, run, _ = trained
    payload = json.loads((run / "eval" / "test.json").read_text())
    card = pixelwise.load(run, device="cpu").card
    figures = payload["figures"]
    assert payload["task"] == "multilabel" and payload["class_names"] == ["blue", "red"]
    assert figures["threshold"] == card.threshold
    assert len(figures["average_precision"]) == 2 and len(figures["support"]) == 2
    assert figures["map"] > 0.9  # two colours a tiny CNN tells apart in a few epochs
    assert not (run / "plots" / "confusion_test.png").exists()  # no C x C matrix


def test_eval_prints_the_headline_and_a_row_per_label(trained, capsys):
    _, run, _ = trained
    assert main(["-q", "eval", str(run), "--split", "val"]) == 0
    out = capsys.readouterr().out
    assert "map" in out and "threshold" in out
    header = next(line for line in out.splitlines() if line.strip().startswith("label"))
    assert header.split() == ["label", "precision", "recall", "f1", "ap", "support"]
    assert any(line.split()[0] == "red" for line in out.splitlines() if line.strip())
    assert json.loads((run / "eval" / "val.json").read_text())["figures"]["map"] >= 0


def test_figures_table_of_multilabel_figures():
    figures = {
        "loss": 0.2,
        "map": 0.75,
        "threshold": 0.4,
        "precision": [1.0, 0.5],
        "recall": [0.5, 1.0],
        "f1": [2 / 3, 2 / 3],
        "average_precision": [1.0, 0.5],
        "support": [2, 3],
    }
    lines = figures_table(figures, ["cat", "dog"], "multilabel").splitlines()
    assert lines[0].split() == ["loss", "0.2000"] and lines[1].split() == ["map", "0.7500"]
    assert lines[-1].split() == ["dog", "0.5000", "1.0000", "0.6667", "0.5000", "3"]


def test_predict_gives_every_label_above_the_threshold(trained, tmp_path, capsys):
    root, run, _ = trained
    predictor = pixelwise.load(run, device="cpu")
    both, neither = root / "img" / "3.png", root / "img" / "0.png"
    results = predictor.predict([both, neither])
    assert all(isinstance(r, MultiLabel) for r in results)
    assert sorted(results[0].labels) == ["blue", "red"] and results[1].labels == []
    assert results[0].threshold == predictor.card.threshold
    assert set(results[0].to_dict()["probabilities"]) == {"blue", "red"}

    out = tmp_path / "pred"
    assert main(["-q", "predict", str(run), str(both), str(neither), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"{both}: " in printed and "red (" in printed and "blue (" in printed
    assert f"{neither}: no label >= " in printed
    with (out / "predictions.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["input", "labels", "probability_blue", "probability_red"]
    assert sorted(rows[0]["labels"].split(";")) == ["blue", "red"] and rows[1]["labels"] == ""
    saved = json.loads((out / "predictions.json").read_text())
    assert saved["task"] == "multilabel"
    assert sorted(saved["predictions"][0]["labels"]) == ["blue", "red"]


def test_data_check_and_stats_count_images_per_label(trained, tmp_path, capsys):
    root, _, args = trained
    assert main(["-q", "data", "check", "digits", *args]) == 0
    out = capsys.readouterr().out
    counts = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.strip()}
    total = {name: sum(int(n) for n in counts[name]) for name in ("red", "blue")}
    assert total == {"red": 32, "blue": 32}  # every image carries each label half the time

    stats_file = tmp_path / "stats.json"
    assert main(["-q", "data", "stats", "digits", *args, "--out", str(stats_file)]) == 0
    out = capsys.readouterr().out
    stats = json.loads(stats_file.read_text())
    assert stats["task"] == "multilabel" and stats["default_method"] == "pos_weight"
    train_items = stats["items"]
    positives = dict(zip(stats["class_names"], stats["class_counts"]))
    expected = [(train_items - positives[n]) / positives[n] for n in stats["class_names"]]
    assert stats["class_weights"]["pos_weight"] == pytest.approx(expected)
    assert "loss.pos_weight=[" in out


def test_report_shows_per_label_figures_and_notes(trained):
    _, run, _ = trained
    assert main(["-q", "report", str(run)]) == 0
    page = (run / "report.html").read_text()
    assert "Per label" in page and "average_precision" in page
    assert "multi-label: no single wrong answer" in page
    assert "multi-label: each label is its own yes/no decision" in page


def test_in_memory_evaluation_of_a_multilabel_run(trained):
    """``evaluate_in_memory`` (``pixelwise.fit`` with a user's model) at the card's
    threshold too."""
    from pixelwise.engine.evaluate import evaluate_in_memory
    from pixelwise.run import RunDir

    _, run, _ = trained
    rundir = RunDir(run)
    splits = rundir.splits()
    model, card = rundir.load_model("best")
    result = evaluate_in_memory(
        rundir, rundir.config(), model, splits.datasets["test"], "test-own", splits.class_names
    )
    assert result.figures["threshold"] == card.threshold and result.matrix.numel() == 0
    assert torch.isfinite(torch.tensor(result.loss))
