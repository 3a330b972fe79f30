"""The evaluation that ends a training run (``experiment.evaluate_after_training``)."""

from __future__ import annotations

import io
import json
import logging
import shutil

import pytest

from pixelwise import log
from pixelwise.experiment import evaluate_after_training
from pixelwise.run import RunDir


@pytest.fixture
def warnings_said(monkeypatch):
    """The lines the package logs while a test runs (its logger does not propagate)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    monkeypatch.setitem(log._state, "quiet", False)
    log.logger.addHandler(handler)
    yield lambda: stream.getvalue().splitlines()
    log.logger.removeHandler(handler)


def test_without_best_pt_last_pt_is_evaluated_and_a_warning_says_so(
    trained_digits, tmp_path, warnings_said
):
    """A run whose best metric never improved has no best.pt: the final evaluation is of
    last.pt, in its own file, said once; nothing pretends it was the best."""
    run_dir = tmp_path / "run"
    shutil.copytree(trained_digits.run_dir, run_dir)
    (run_dir / "checkpoints" / "best.pt").unlink()
    shutil.rmtree(run_dir / "eval")
    run = RunDir(run_dir)

    result = evaluate_after_training(run, trained_digits.cfg)

    said = [line for line in warnings_said() if "no best.pt" in line]
    assert said == [
        f"no best.pt: {trained_digits.cfg.best_metric} was never computed or never improved; "
        "evaluating last.pt instead"
    ]
    assert result is not None and result.split == "test"
    assert sorted(p.name for p in (run_dir / "eval").iterdir()) == ["test-last.json"]
    saved = json.loads((run_dir / "eval" / "test-last.json").read_text())
    assert saved["checkpoint"] == "checkpoints/last.pt"
    assert run.headline_evaluation()[0] == "test-last"


def test_without_any_checkpoint_nothing_is_evaluated(trained_digits, tmp_path, warnings_said):
    run_dir = tmp_path / "run"
    shutil.copytree(trained_digits.run_dir, run_dir)
    shutil.rmtree(run_dir / "checkpoints")
    shutil.rmtree(run_dir / "eval")

    assert evaluate_after_training(RunDir(run_dir), trained_digits.cfg) is None
    assert [line for line in warnings_said() if "no checkpoint was written" in line] == [
        f"{run_dir}: no checkpoint was written; nothing to evaluate"
    ]
    assert not (run_dir / "eval").exists()
