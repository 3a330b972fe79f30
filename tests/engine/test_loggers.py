"""Loggers: metrics.csv and MLflow receive every epoch's scalars (and a resume continues
them), the config refuses what cannot work, and a missing package is one clear line."""

from __future__ import annotations

import csv
import math
import os
import sys

import pytest

from pixelwise.config import ConfigError, load_config
from pixelwise.engine import fit
from pixelwise.engine.loggers import CSVLog, mlflow_tracking_uri, open_loggers
from pixelwise.errors import UserError
from pixelwise.run import RunDir

ALLOW_FILE_STORE = "MLFLOW_ALLOW_FILE_STORE"


def read_csv(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def test_csv_has_every_scalar_of_metrics_jsonl_and_grows_its_header(small_digits, tmp_path):
    cfg = small_digits("train.epochs=3", "train.val_every=2", "train.loggers=[csv]")
    result = fit(cfg, run_dir=tmp_path / "run")
    run = RunDir(result.run_dir)
    rows = read_csv(run.metrics_csv)
    header = list(rows[0])
    assert header[0] == "epoch" and [row["epoch"] for row in rows] == ["1", "2", "3"]
    assert header.index("train/loss") < header.index("val/loss")  # val/ first seen at epoch 2
    assert rows[0]["val/accuracy"] == "" and rows[1]["val/accuracy"] != ""
    assert "val/iou" not in header  # per-class lists stay in metrics.jsonl
    assert rows[0]["train/samples"] == str(result.history[0]["train/samples"])
    for row, record in zip(rows, run.metrics()):
        for key, value in record.items():
            if isinstance(value, float) and not math.isnan(value):
                assert float(row[key]) == value, key  # full precision, no rounding


def test_csv_follows_a_resume_from_the_checkpoint(small_digits, tmp_path):
    cfg = small_digits("train.epochs=2", "train.loggers=[csv]")
    fit(cfg, run_dir=tmp_path / "run")
    run = RunDir(tmp_path / "run")
    # a crash after epoch 2's record but before its checkpoint: resume drops that record
    run.append_metrics({**run.metrics()[-1], "epoch": 3})
    CSVLog(run.metrics_csv, run.metrics())
    assert [r["epoch"] for r in read_csv(run.metrics_csv)] == ["1", "2", "3"]
    fit(
        small_digits("train.epochs=3", "train.loggers=[csv]"),
        tmp_path / "run",
        resume=True,
        allow_config_changes=True,
    )
    rows = read_csv(run.metrics_csv)
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert float(rows[2]["train/loss"]) == run.metrics()[2]["train/loss"]


def test_csv_leaves_undefined_figures_empty(tmp_path):
    log = CSVLog(tmp_path / "metrics.csv")
    log.log({"epoch": 1, "lr": 0.1, "val/miou": math.nan, "val/iou": [0.5, math.nan]})
    log.log({"epoch": 2, "lr": 0.05, "val/miou": 0.25})
    assert read_csv(tmp_path / "metrics.csv") == [
        {"epoch": "1", "lr": "0.1", "val/miou": ""},
        {"epoch": "2", "lr": "0.05", "val/miou": "0.25"},
    ]


def test_mlflow_reads_back_every_epoch_through_its_own_client(small_digits, tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv(ALLOW_FILE_STORE, "")  # restored afterwards; pixelwise must set it
    monkeypatch.delenv(ALLOW_FILE_STORE)
    cfg = small_digits("train.epochs=2", "train.loggers=[mlflow]", "name=digits-mlflow")
    result = fit(cfg, run_dir=tmp_path / "run")
    assert os.environ[ALLOW_FILE_STORE] == "true"
    run = RunDir(result.run_dir)

    client = MlflowClient(tracking_uri=run.mlruns_dir.as_uri())
    experiment = client.get_experiment_by_name("digits-mlflow")
    (found,) = client.search_runs([experiment.experiment_id])
    assert found.info.status == "FINISHED" and found.info.run_name == "run"
    assert found.data.params["optim.lr"] == "0.05"
    assert found.data.params["model.options.width"] == "4"
    for key in ("train/loss", "val/accuracy", "lr"):
        history = client.get_metric_history(found.info.run_id, key)
        assert [(m.step, m.value) for m in history] == [
            (r["epoch"], r[key]) for r in result.history
        ]

    # a resume continues the same MLflow run, and keeps the parameters it first logged
    resumed = small_digits(
        "train.epochs=3", "train.loggers=[mlflow]", "name=digits-mlflow", "train.log_every=9"
    )
    fit(resumed, tmp_path / "run", resume=True, allow_config_changes=True)
    (again,) = client.search_runs([experiment.experiment_id])
    assert again.info.run_id == found.info.run_id and again.info.status == "FINISHED"
    steps = [m.step for m in client.get_metric_history(found.info.run_id, "val/accuracy")]
    assert steps == [1, 2, 3]
    assert again.data.params["train.log_every"] == "4"


def test_mlflow_marks_a_run_that_raised_as_failed(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv(ALLOW_FILE_STORE, "true")
    cfg = load_config("digits", ["train.tensorboard=false", "train.loggers=[mlflow]"])
    (tmp_path / "run").mkdir()
    run = RunDir(tmp_path / "run")
    (log,) = open_loggers(cfg, run)
    log.log({"epoch": 1, "train/loss": 2.5, "val/miou": math.nan})

    def fail_in_the_loop():
        try:
            raise RuntimeError("diverged")
        finally:
            log.close()  # as the loop's ``finally`` closes its loggers

    with pytest.raises(RuntimeError):
        fail_in_the_loop()
    client = MlflowClient(tracking_uri=run.mlruns_dir.as_uri())
    finished = client.get_run(log.run_id)
    assert finished.info.status == "FAILED"
    assert finished.data.metrics == {"train/loss": 2.5}  # NaN is left out


def test_a_missing_mlflow_package_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow now raises ImportError
    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)
    cfg = load_config("digits", ["train.loggers=[csv, mlflow]"])
    (tmp_path / "run").mkdir()
    with pytest.raises(UserError, match=r"names mlflow.*pip install 'pixelwise\[mlflow\]'"):
        open_loggers(cfg, RunDir(tmp_path / "run"))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["train.loggers=[wandb]"], "must be one of tensorboard, csv, mlflow"),
        (["train.loggers=[csv, csv]"], "names a logger twice"),
        (["train.tensorboard=false", "train.loggers=[tensorboard]"], "train.tensorboard is false"),
    ],
)
def test_config_refuses_loggers_that_cannot_work(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config("digits", overrides)


def test_tensorboard_stays_on_by_default_and_loggers_add_to_it(tmp_path):
    cfg = load_config("digits", ["train.loggers=[csv]"])
    (tmp_path / "run").mkdir()
    names = [type(log).__name__ for log in open_loggers(cfg, RunDir(tmp_path / "run"))]
    assert names == ["TensorBoardLog", "CSVLog"]
    cfg = load_config("digits", ["train.tensorboard=false"])
    assert open_loggers(cfg, RunDir(tmp_path / "run")) == []


def test_mlflow_uri_takes_a_uri_a_folder_or_the_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run").mkdir()
    run = RunDir(tmp_path / "run")
    assert mlflow_tracking_uri(None, run) == (tmp_path / "run" / "mlruns").as_uri()
    assert mlflow_tracking_uri("runs/mlruns", run) == (tmp_path / "runs" / "mlruns").as_uri()
    for uri in ("sqlite:///runs/mlflow.db", "http://localhost:5000", "file:///x/mlruns"):
        assert mlflow_tracking_uri(uri, run) == uri
