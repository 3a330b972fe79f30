"""The demo path on a reduced budget: run directory contents, reload, re-evaluation."""

from __future__ import annotations

import json

import pytest
import torch

from pixelwise.checkpoint import load_checkpoint
from pixelwise.cli import main
from pixelwise.config import load_config
from pixelwise.data import build_datasets, build_loader
from pixelwise.engine import evaluate_run
from pixelwise.experiment import run_experiment
from pixelwise.run import RunDir


def test_one_epoch_run_writes_everything_and_reloads(tmp_path, tiny_digits_overrides):
    cfg = load_config(_bundled("digits"), tiny_digits_overrides)
    splits = build_datasets(cfg, tmp_path / "probe")
    loader = build_loader(splits.datasets["test"], cfg.data, False, torch.device("cpu"))
    images, _ = next(iter(loader))
    trained_logits = []  # what the model in memory predicted right after its epoch

    def predict_with_the_trained_model(end):
        end.model.eval()
        with torch.no_grad():
            trained_logits.append(end.model(images))

    result, test = run_experiment(cfg, on_epoch=predict_with_the_trained_model)
    run_dir = result.run_dir
    for name in [
        "config.yaml",
        "metrics.jsonl",
        "splits.json",
        "checkpoints/last.pt",
        "checkpoints/best.pt",
    ]:
        assert (run_dir / name).is_file(), name
    assert (run_dir / "plots" / "curves.png").is_file()
    assert (run_dir / "plots" / "confusion_test.png").is_file()
    assert (run_dir / "eval" / "test.json").is_file()
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 1
    assert {"epoch", "lr", "train/loss", "val/loss", "val/accuracy", "val/f1"} <= set(records[0])

    # The best checkpoint (epoch 1 of 1) reloads into a model that predicts exactly what
    # the trained model predicted in memory.
    state = load_checkpoint(run_dir / "checkpoints" / "best.pt")
    assert state["card"]["class_names"] == [str(d) for d in range(10)]
    reloaded, card = RunDir(run_dir).load_model("best")
    assert card.model == cfg.model.name and card.num_classes == 10
    with torch.no_grad():
        assert torch.equal(reloaded(images), trained_logits[-1])

    # eval of the saved run reproduces the test figures and the logged val figures.
    assert evaluate_run(run_dir, split="test").figures["accuracy"] == test.figures["accuracy"]
    val = evaluate_run(run_dir, split="val", write=False)
    assert abs(val.figures["accuracy"] - records[0]["val/accuracy"]) < 1e-12


def test_rerun_with_same_name_does_not_overwrite(small_digits):
    from pixelwise.engine import fit

    cfg = small_digits("train.epochs=1")
    first, second = fit(cfg), fit(cfg)
    assert first.run_dir != second.run_dir and second.run_dir.name.endswith("-2")
    assert first.run_dir.is_dir() and second.run_dir.is_dir()


def test_eval_command_prints_figures(tmp_path, trained_digits, capsys):
    capsys.readouterr()
    assert main(["eval", str(trained_digits.run_dir)]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "precision" in out
    assert main(["eval", str(tmp_path / "missing")]) == 2


def _bundled(name: str):
    from pixelwise.config import resolve_config

    return resolve_config(name)


# --------------------------------------------------------------------------- engine switches
def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(
    small_digits, tmp_path, monkeypatch
):
    import pytest

    from pixelwise.engine import fit, trainer

    calls = {"n": 0}
    original = trainer.compute_loss

    def nan_in_epoch_two(parts, output, images, targets):
        loss, logits = original(parts, output, images, targets)
        calls["n"] += 1
        return (loss * float("nan") if calls["n"] > 5 else loss), logits  # 5 steps an epoch

    monkeypatch.setattr(trainer, "compute_loss", nan_in_epoch_two)
    with pytest.raises(trainer.NonFiniteLossError, match="loss became nan at epoch 2"):
        fit(small_digits("train.epochs=3"), run_dir=tmp_path / "run")
    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert state["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 1


def test_early_stopping_tensorboard_and_optional_train_metrics(small_digits, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from pixelwise.engine import fit

    cfg = small_digits(
        "train.epochs=5",
        "train.tensorboard=true",
        "train.train_metrics=false",
        "train.early_stopping.enabled=true",
        "train.early_stopping.metric=train/loss",
        "train.early_stopping.mode=max",  # the loss falls, so it never 'improves'
        "train.early_stopping.patience=1",
    )
    result = fit(cfg, run_dir=tmp_path / "run")
    assert result.stopped_early and result.epochs_run == 2
    assert "train/accuracy" not in result.history[0] and "train/loss" in result.history[0]
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"lr", "train/loss", "val/loss", "val/accuracy", "val/macro_f1"} <= tags
    assert "val/miou" not in tags  # a classifier's own figures only
    assert len(events.Scalars("val/accuracy")) == 2


def test_an_unknown_best_metric_names_the_logged_ones(small_digits, tmp_path):
    import pytest

    from pixelwise.engine import fit

    with pytest.raises(
        ValueError, match="'val/acuracy' is not logged; val/ figures are: .*val/accuracy"
    ):
        fit(small_digits("train.epochs=1", "train.best_metric=val/acuracy"), run_dir=tmp_path / "r")


def test_auxiliary_head_losses_are_weighted(small_digits):
    from pixelwise.engine.trainer import compute_loss

    class Parts:
        cfg = small_digits("loss.aux_weight=0.25")
        loss_fn = torch.nn.CrossEntropyLoss()
        distill = None

    main, aux = torch.randn(4, 3), torch.randn(4, 3)
    targets = torch.randint(0, 3, (4,))
    loss, logits = compute_loss(Parts(), {"out": main, "aux": aux}, None, targets)
    expected = Parts.loss_fn(main, targets) + 0.25 * Parts.loss_fn(aux, targets)
    assert torch.allclose(loss, expected) and logits is main


def test_channels_last_and_bf16_train_on_cpu(small_digits, tmp_path):
    from pixelwise.engine import fit

    plain = fit(small_digits("train.epochs=2"), run_dir=tmp_path / "plain")
    cfg = small_digits("train.epochs=2", "train.channels_last=true", "train.amp=bf16")
    fast = fit(cfg, run_dir=tmp_path / "run")
    first, last = fast.history
    assert last["train/loss"] < first["train/loss"]  # it learns
    # bfloat16 rounds, so the run differs from float32, but not by much: the same task
    # learnt to about the same point after the same two epochs.
    assert abs(last["val/accuracy"] - plain.history[-1]["val/accuracy"]) < 0.15
    assert last["val/accuracy"] > 0.15  # ten classes: above chance (0.1) after 2 tiny epochs
    weights = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["model"]
    assert all(v.dtype != torch.bfloat16 for v in weights.values())  # saved in float32


@pytest.mark.slow
def test_torch_compile_trains_on_cpu(small_digits, tmp_path):
    from pixelwise.engine import fit

    result = fit(small_digits("train.epochs=1", "train.compile=true"), run_dir=tmp_path / "run")
    state = load_checkpoint(result.run_dir / "checkpoints" / "last.pt")
    assert not any(k.startswith("_orig_mod") for k in state["model"])  # the plain module saved


def test_segmentation_run_with_dice_partial_encoder_and_learning_gif(tmp_path):
    from pixelwise.config import load_config
    from pixelwise.engine.finetune import stage_parameter_names
    from pixelwise.models import create_model

    model = create_model("unet", num_classes=11, in_channels=1, encoder="small_cnn", width=4)
    stages = stage_parameter_names(model)
    assert [s[0] for s in stages] == [
        "encoder.stem.0.weight",
        "encoder.stages.1.0.0.weight",
        "encoder.stages.2.0.0.weight",
    ]
    cfg = load_config(
        None,
        [
            "task=segmentation",
            "data.format=digits_segmentation",
            "data.num_samples=40",
            "data.image_size=[16, 16]",
            "data.in_channels=1",
            "data.batch_size=8",
            "model.name=unet",
            "model.encoder=small_cnn",
            "model.options={width: 4}",
            "loss.terms=[{name: cross_entropy}, {name: dice, weight: 0.5}]",
            "finetune.strategy=partial",
            "train.epochs=1",
            "train.tensorboard=false",
            "train.gif_images=2",
            "train.report=false",
        ],
    )
    result, _ = run_experiment(cfg, run_dir=tmp_path / "run")
    assert (result.run_dir / "learning.gif").is_file()
    assert 0 <= result.history[0]["val/miou"] <= 1 and "train/miou" in result.history[0]
    assert "val/macro_f1" not in result.history[0]  # a segmenter's own figures only


def test_class_weights_reach_the_loss(small_digits, tmp_path):
    from pixelwise.engine.build import build_parts
    from pixelwise.engine.distributed import DistContext
    from pixelwise.engine.trainer import read_data

    weights = [1.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5]
    cfg = small_digits(f"data.class_weights={weights}")
    splits, class_weights = read_data(cfg, tmp_path)
    assert class_weights.tolist() == weights
    parts = build_parts(cfg, splits.num_classes, DistContext(), 5, class_weights)
    assert parts.loss_fn.weight.tolist() == weights


def test_keep_best_keeps_the_k_best_epochs_and_averages_them(small_digits, tmp_path):
    from pixelwise.checkpoint import average_state_dicts
    from pixelwise.engine.trainer import rank_epoch
    from pixelwise.experiment import run_experiment

    top: list = []
    assert rank_epoch(top, 0.5, 1, 2, "max") == (True, [])
    assert rank_epoch(top, 0.7, 2, 2, "max") == (True, [])
    assert rank_epoch(top, 0.6, 3, 2, "max") == (True, [1])
    assert rank_epoch(top, 0.1, 4, 2, "max") == (False, [4])
    assert top == [[0.7, 2], [0.6, 3]]

    cfg = small_digits(
        "train.epochs=4", "train.keep_best=2", "train.average_best=true", "train.report=false"
    )
    result, test = run_experiment(cfg, run_dir=tmp_path / "run")
    run = RunDir(result.run_dir)
    values = [r["val/accuracy"] for r in result.history]
    ranked = sorted(range(4), key=lambda i: (-values[i], i))[:2]
    assert [p.name for p in run.top_checkpoints()] == [f"best-e{i + 1:03d}.pt" for i in ranked]
    assert len(list(run.checkpoints_dir.glob("best-e*.pt"))) == 2  # the others deleted
    averaged = load_checkpoint(run.checkpoint_file("averaged"))
    states = [load_checkpoint(p)["model"] for p in run.top_checkpoints()]
    expected = average_state_dicts(states)
    assert all(torch.equal(averaged["model"][k], v) for k, v in expected.items())
    assert averaged["averaged_epochs"] == [i + 1 for i in ranked]
    assert (run.eval_dir / "test-averaged.json").is_file()  # evaluated beside best's test.json
    assert test.checkpoint.name == "best.pt"


CLASSIFICATION_ONLY = ("accuracy", "top5_accuracy", "balanced_accuracy", "macro_f1", "f1")
SEGMENTATION_ONLY = ("pixel_accuracy", "miou", "fwiou", "mean_dice", "mean_class_accuracy", "iou")


def test_a_classifier_run_records_and_evaluates_classification_figures(trained_digits):
    for record in RunDir(trained_digits.run_dir).metrics():
        assert all(f"val/{name}" in record for name in CLASSIFICATION_ONLY)
        assert "train/accuracy" in record and "train/macro_f1" in record
        names = {key.split("/", 1)[-1] for key in record}
        assert not names & set(SEGMENTATION_ONLY), names & set(SEGMENTATION_ONLY)
    written = json.loads((trained_digits.run_dir / "eval" / "test.json").read_text())
    for figures in (written["figures"], trained_digits.test.figures):
        assert all(name in figures for name in (*CLASSIFICATION_ONLY, "precision", "support"))
        assert not set(figures) & set(SEGMENTATION_ONLY)


def test_a_redirected_log_gets_lines_not_bar_frames(small_digits, tmp_path, capfd, monkeypatch):
    import io
    import logging

    from pixelwise import log
    from pixelwise.engine import fit

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    monkeypatch.setitem(log._state, "quiet", False)
    monkeypatch.setattr(log, "watched", lambda: False)  # as under `> train.log 2>&1`
    monkeypatch.setattr(log, "LINE_INTERVAL_S", 0.0)  # as if each step took the interval
    level = log.logger.level
    log.logger.setLevel(logging.INFO)
    log.logger.addHandler(handler)
    try:
        fit(small_digits("train.epochs=1", "train.log_every=2"), run_dir=tmp_path / "run")
    finally:
        log.logger.removeHandler(handler)
        log.logger.setLevel(level)
    assert "\r" not in capfd.readouterr().err
    lines = stream.getvalue().splitlines()
    assert "epoch 1/1: 2/5 loss=" in lines[1] and " speed=" in lines[1], lines
    assert lines[-1].startswith("epoch 1: train/loss=") and "img/s" in lines[-1], lines
    assert not any(line.startswith("epoch 1/1: 5/5") for line in lines)  # the epoch line says it
