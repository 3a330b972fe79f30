"""Checkpoint files: atomic writes, weights_only refusal, one-sentence mismatch errors."""

from __future__ import annotations

import pathlib

import pytest
import torch
from torch import nn

from pixelwise import checkpoint
from pixelwise.card import ModelCard, Preprocessing
from pixelwise.checkpoint import (
    CheckpointError,
    check_compatible,
    load_checkpoint,
    save_checkpoint,
)


def test_a_crash_while_saving_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "checkpoints" / "last.pt"
    save_checkpoint({"model": {"w": torch.ones(3)}, "epoch": 1}, path)

    def crash(state, f):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt  # the process is killed mid-write

    monkeypatch.setattr(checkpoint.torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"model": {"w": torch.zeros(3)}, "epoch": 2}, path)
    monkeypatch.undo()
    state = load_checkpoint(path)
    assert state["epoch"] == 1 and torch.equal(state["model"]["w"], torch.ones(3))
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temporary file left


class Payload:
    """Unpickling this would create a file: code execution, which must be refused."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def test_a_checkpoint_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "payload": Payload(marker)}, path)
    with pytest.raises(CheckpointError, match="refused to load"):
        load_checkpoint(path)
    assert not marker.exists()


def test_another_model_or_class_count_fails_with_one_sentence():
    card = ModelCard(
        task="classification",
        model="resnet18",
        class_names=tuple(str(i) for i in range(10)),
        in_channels=3,
        image_size=(32, 32),
        preprocessing=Preprocessing(resize=(32, 32)),
    )
    with pytest.raises(
        CheckpointError, match=r"holds a 'resnet18' model, but this run builds 'small_cnn'"
    ):
        card.check_fits("last.pt", "small_cnn", 10, 3)
    with pytest.raises(CheckpointError, match=r"trained for 10 classes, but this run has 5$"):
        card.check_fits("last.pt", "resnet18", 5, 3)
    with pytest.raises(CheckpointError, match="expects 3 input channels"):
        card.check_fits("last.pt", "resnet18", 10, 1)
    card.check_fits("last.pt", "resnet18", 10, 3)

    model = nn.Linear(4, 5)
    with pytest.raises(
        CheckpointError, match="trained for 10 classes, and this model has 5"
    ) as err:
        check_compatible(model, nn.Linear(4, 10).state_dict(), "best.pt")
    assert "\n" not in str(err.value)
    with pytest.raises(CheckpointError, match="made for another model"):
        check_compatible(model, nn.Conv2d(1, 1, 1).state_dict(), "best.pt")


def test_missing_or_foreign_files_are_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")
    torch.save({"weights": torch.ones(1)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a pixelwise checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
