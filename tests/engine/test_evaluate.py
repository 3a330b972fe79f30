"""``evaluate`` and ``pixelwise eval``: the figures of a saved run, as trained and with TTA."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from pixelwise.checkpoint import load_checkpoint
from pixelwise.cli import main
from pixelwise.cli._common import format_figure
from pixelwise.config import load_config
from pixelwise.engine import evaluate_run, fit
from pixelwise.engine.evaluate import evaluate
from pixelwise.models import MODELS, ModelSpec


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: tiny models on a shared machine run several times faster."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def read_records(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def printed_scalars(out: str) -> dict[str, str]:
    """``name value`` lines of the table, before the per-class rows."""
    scalars = {}
    for line in out.splitlines()[1:]:
        parts = line.split()
        if not parts:
            break
        if len(parts) == 2:
            scalars[parts[0]] = parts[1]
    return scalars


def same_figure(ours, logged) -> bool:
    if ours is None or (isinstance(ours, float) and math.isnan(ours)):
        return logged is None or (isinstance(logged, float) and math.isnan(logged))
    if isinstance(ours, list):
        return len(ours) == len(logged) and all(same_figure(a, b) for a, b in zip(ours, logged))
    if isinstance(ours, float):
        return abs(ours - logged) <= 1e-12
    return ours == logged


# --------------------------------------------------------------------------- classification
@pytest.fixture
def digits_run(trained_digits):
    """The session's shared digits run (two epochs at 8x8; tests/conftest.py)."""
    return trained_digits


def test_eval_prints_the_figures_logged_at_the_best_epoch(digits_run, capsys):
    run_dir = digits_run.run_dir
    best_epoch = load_checkpoint(run_dir / "checkpoints" / "best.pt")["best_epoch"]
    assert best_epoch == digits_run.best_epoch
    logged = read_records(run_dir)[best_epoch - 1]
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--split", "val"]) == 0
    out = capsys.readouterr().out
    printed = printed_scalars(out)
    for name in ["loss", "accuracy", "top5_accuracy", "balanced_accuracy", "macro_f1"]:
        assert printed[name] == format_figure(logged[f"val/{name}"]), name
    assert "precision" in out and "support" in out and "miou" not in out

    written = json.loads((run_dir / "eval" / "val.json").read_text())
    assert written["epoch"] == best_epoch and written["task"] == "classification"
    for name, value in written["figures"].items():
        assert same_figure(value, logged[f"val/{name}"]), name
    matrix = torch.tensor(written["confusion_matrix"])
    assert int(matrix.sum()) == sum(written["figures"]["support"])
    assert (run_dir / "plots" / "confusion_val.png").is_file()


def test_eval_with_flip_tta_records_how_it_predicted(digits_run, capsys):
    run_dir = digits_run.run_dir
    plain = evaluate_run(run_dir, split="val", write=False)
    assert plain.inference["tta_hflip"] is False and plain.task == "classification"
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--split", "val", "--tta"]) == 0
    assert "tta_hflip" in capsys.readouterr().out.splitlines()[0]
    written = json.loads((run_dir / "eval" / "val-tta.json").read_text())
    assert written["inference"]["tta_hflip"] is True
    assert written["figures"]["accuracy"] != plain.figures["accuracy"]  # mirrored digits differ


def test_eval_errors_are_one_line(digits_run, tmp_path, capsys):
    run_dir = str(digits_run.run_dir)
    assert main(["eval", run_dir, "--split", "nope"]) == 2
    assert "split 'nope'" in capsys.readouterr().err
    assert main(["eval", run_dir, "--sliding-window"]) == 2
    assert "segmentation" in capsys.readouterr().err
    assert main(["eval", run_dir, "--overlap", "1.5", "--sliding-window"]) == 2
    assert "eval.window_overlap" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "missing")]) == 2


def test_eval_accepts_a_checkpoint_path(digits_run):
    path = digits_run.run_dir / "checkpoints" / "last.pt"
    result = evaluate_run(path, split="val", write=False)
    assert result.checkpoint == path and result.run_dir == digits_run.run_dir


# --------------------------------------------------------------------------- segmentation
class PixelNet(nn.Module):
    """A 3x3 then 1x1 convolution: the smallest model that segments digit canvases."""

    def __init__(self, num_classes: int = 11, in_channels: int = 1, width: int = 8) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, num_classes, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


@pytest.fixture
def segmentation_run(tmp_path, monkeypatch):
    monkeypatch.setitem(
        MODELS, "pixel_net", ModelSpec(PixelNet, "segmentation", (1, 32, 32), "test model")
    )
    cfg = load_config(
        None,
        [
            "name=seg",
            "task=segmentation",
            f"output_dir={tmp_path / 'runs'}",
            "data.format=digits_segmentation",
            "data.num_samples=60",
            "data.image_size=[32, 32]",
            "data.in_channels=1",
            "data.batch_size=8",
            "model.name=pixel_net",
            "optim.lr=0.05",
            "train.epochs=1",
            "train.tensorboard=false",
            "train.report=false",
            "train.learning_gif=false",
        ],
    )
    return fit(cfg)


def test_segmentation_eval_plain_tta_and_sliding_window(segmentation_run, capsys):
    run_dir = segmentation_run.run_dir
    logged = read_records(run_dir)[-1]
    plain = evaluate_run(run_dir, split="val", write=False)
    assert plain.task == "segmentation"
    for name in ["loss", "pixel_accuracy", "miou", "fwiou", "mean_dice", "iou", "dice"]:
        assert same_figure(plain.figures[name], logged[f"val/{name}"]), name
    assert "top5_accuracy" not in plain.figures

    capsys.readouterr()
    args = [
        "eval",
        str(run_dir),
        "--split",
        "val",
        "--tta",
        "--sliding-window",
        "--overlap",
        "0.25",
    ]
    assert main([*args, "--data", "image_size=[44, 37]"]) == 0
    out = capsys.readouterr().out
    assert "sliding_window" in out.splitlines()[0]
    for heading in ["pixel_accuracy", "mean_class_accuracy", "miou", "fwiou", "mean_dice", "iou"]:
        assert heading in out
    assert "background" in out and "precision" not in out
    written = json.loads((run_dir / "eval" / "val-tta-sliding.json").read_text())
    assert written["inference"]["sliding_window"] == [32, 32]  # the training size
    assert written["inference"]["window_overlap"] == 0.25
    assert written["inference"]["tta_hflip"] is True
    figures = written["figures"]
    assert 0.0 <= figures["miou"] <= 1.0
    pixels = int(torch.tensor(written["confusion_matrix"]).sum())
    assert pixels == sum(figures["support"]) and pixels % (44 * 37) == 0  # every pixel, once


# --------------------------------------------------------------------------- evaluate()
def test_evaluate_keeps_the_training_mode_and_counts_every_sample():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.Dropout(0.5))
    data = TensorDataset(torch.randn(10, 4), torch.tensor([0, 1, 2, 255, 0, 1, 2, 0, 1, 2]))
    loader = DataLoader(data, batch_size=3)
    model.train()
    loss, matrix = evaluate(
        model, loader, 3, torch.device("cpu"), loss_fn=nn.CrossEntropyLoss(ignore_index=255)
    )
    assert model.training
    assert int(matrix.matrix.sum()) == 9  # the ignored sample is not counted
    assert math.isfinite(loss)
    no_loss, again = evaluate(model, loader, 3, torch.device("cpu"))
    assert math.isnan(no_loss) and torch.equal(again.matrix, matrix.matrix)
    calls = []

    def predict(m, images):
        calls.append(images.shape[0])
        return m(images)

    evaluate(model, loader, 3, torch.device("cpu"), predict=predict)
    assert sum(calls) == 10


def test_eval_loss_uses_the_run_class_weights(tmp_path, tiny_digits_overrides):
    """With class weights, eval's val loss equals the val/loss training logged."""
    from pixelwise.config import load_config
    from pixelwise.engine import evaluate_run, fit

    weights = "[" + ", ".join(str(1.0 + i) for i in range(10)) + "]"
    cfg = load_config("digits", [*tiny_digits_overrides, f"data.class_weights={weights}"])
    result = fit(cfg)
    logged = result.history[-1]["val/loss"]
    evaluated = evaluate_run(result.run_dir, split="val", checkpoint="last", write=False)
    assert abs(evaluated.figures["loss"] - logged) < 1e-6
