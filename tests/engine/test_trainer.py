"""The demo path on a reduced budget: run directory contents, reload, re-evaluation."""

from __future__ import annotations

import json

import torch

from pixelwise.cli import main
from pixelwise.config import load_config
from pixelwise.data import build_datasets, build_loader
from pixelwise.engine import evaluate_run, run_experiment
from pixelwise.engine.build import build_model
from pixelwise.engine.checkpoint import load_checkpoint


def test_one_epoch_run_writes_everything_and_reloads(tmp_path, tiny_digits_overrides):
    cfg = load_config(_bundled("digits"), tiny_digits_overrides)
    result, test = run_experiment(cfg)
    run_dir = result.run_dir
    for name in ["config.yaml", "metrics.jsonl", "splits.json", "checkpoints/last.pt", "checkpoints/best.pt"]:
        assert (run_dir / name).is_file(), name
    assert (run_dir / "plots" / "curves.png").is_file()
    assert (run_dir / "plots" / "confusion_test.png").is_file()
    assert (run_dir / "eval" / "test.json").is_file()
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 1
    assert {"epoch", "lr", "train/loss", "val/loss", "val/accuracy", "val/f1"} <= set(records[0])

    # The checkpoint reloads into a fresh model that predicts exactly the same.
    state = load_checkpoint(run_dir / "checkpoints" / "best.pt")
    assert state["card"]["class_names"] == [str(d) for d in range(10)]
    splits = build_datasets(cfg, run_dir)
    images, _ = next(iter(build_loader(splits.datasets["test"], cfg.data, train=False, device=torch.device("cpu"))))
    trained = build_model(cfg, 10)
    trained.load_state_dict(state["model"])
    again = build_model(cfg, 10)
    again.load_state_dict(load_checkpoint(run_dir / "checkpoints" / "best.pt")["model"])
    trained.eval(), again.eval()
    with torch.no_grad():
        assert torch.equal(trained(images), again(images))

    # eval of the saved run reproduces the test figures and the logged val figures.
    assert evaluate_run(run_dir, split="test").figures["accuracy"] == test.figures["accuracy"]
    val = evaluate_run(run_dir, split="val", write=False)
    assert abs(val.figures["accuracy"] - records[0]["val/accuracy"]) < 1e-12


def test_rerun_with_same_name_does_not_overwrite(tmp_path, tiny_digits_overrides):
    cfg = load_config(_bundled("digits"), tiny_digits_overrides)
    first, _ = run_experiment(cfg)
    second, _ = run_experiment(cfg)
    assert first.run_dir != second.run_dir
    assert first.run_dir.is_dir() and second.run_dir.is_dir()


def test_eval_command_prints_figures(tmp_path, tiny_digits_overrides, capsys):
    cfg = load_config(_bundled("digits"), tiny_digits_overrides)
    result, _ = run_experiment(cfg)
    capsys.readouterr()
    assert main(["eval", str(result.run_dir)]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "precision" in out
    assert main(["eval", str(tmp_path / "missing")]) == 2


def _bundled(name: str):
    from pixelwise.cli._common import resolve_config_path

    return resolve_config_path(name)
