"""Where each epoch's record goes besides ``metrics.jsonl``: TensorBoard, CSV, MLflow.

A logger is anything with ``log(record)`` and ``close()`` (``Logger``). The loop calls
``log`` on rank 0 once per epoch, after ``metrics.jsonl`` holds the record, and ``close``
when training ends or fails. ``open_loggers(cfg, run)`` opens the configured ones:
TensorBoard (``train.tensorboard``, on by default) and those named in ``train.loggers``.

A record holds ``epoch``, ``lr`` (the base learning rate of the epoch's first step),
``lr_end``, every ``train/`` figure, and every ``val/`` (and ``val_ema/``) figure where
validation ran. Loggers keep its scalars; per-class lists stay in ``metrics.jsonl``.
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Protocol

from ..config import ExperimentConfig, to_dict
from ..errors import UserError
from ..log import logger
from ..run import RunDir

__all__ = ["CSVLog", "Logger", "MLflowLog", "TensorBoardLog", "close_loggers", "open_loggers"]


class Logger(Protocol):
    def log(self, record: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


def scalars(record: dict[str, Any]) -> dict[str, float]:
    """The plottable numbers of a record (per-class lists and the epoch left out)."""
    return {
        k: float(v)
        for k, v in record.items()
        if k != "epoch" and isinstance(v, (int, float)) and not isinstance(v, bool)
    }


class TensorBoardLog:
    """Every scalar of every epoch in ``log_dir`` (``train.tensorboard``)."""

    def __init__(self, log_dir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter  # optional: tensorboard may be absent

        self.writer = SummaryWriter(log_dir=str(log_dir))

    def log(self, record: dict[str, Any]) -> None:
        for key, value in scalars(record).items():
            if not math.isnan(value):
                self.writer.add_scalar(key, value, global_step=record["epoch"])
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class CSVLog:
    """``metrics.csv``: one row per epoch, ``epoch`` first, then each scalar in the order it
    first appeared. A figure that appears late (the first validation, with
    ``train.val_every``) adds a column, so the file is rewritten whole after each epoch
    (atomically): it is always one rectangular table. An empty cell is a figure not
    measured that epoch, or undefined (NaN; ``null`` in ``metrics.jsonl``). A resumed run
    starts from the records ``metrics.jsonl`` kept."""

    def __init__(self, path: Path, history: list[dict[str, Any]] | None = None) -> None:
        self.path = path
        self.rows = [self._row(record) for record in history or []]
        if self.rows:
            self._write()

    @staticmethod
    def _row(record: dict[str, Any]) -> dict[str, Any]:
        defined = [k for k, v in scalars(record).items() if not math.isnan(v)]
        return {"epoch": record["epoch"], **{k: record[k] for k in defined}}  # ints stay ints

    def log(self, record: dict[str, Any]) -> None:
        self.rows.append(self._row(record))
        self._write()

    def _write(self) -> None:
        columns = list(dict.fromkeys(key for row in self.rows for key in row))
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with tmp.open("w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=columns, restval="")
            writer.writeheader()
            writer.writerows(self.rows)
        os.replace(tmp, self.path)

    def close(self) -> None:
        pass  # every epoch is already on disk


RUN_TAG = "pixelwise.run_dir"
"""The MLflow run tag naming the pixelwise run directory: a resumed run continues its run."""


class MLflowLog:
    """Each epoch's scalars as MLflow metrics (step = epoch) in the experiment ``experiment``,
    one MLflow run per pixelwise run, named after its directory and tagged with its path
    (``RUN_TAG``), so that a resumed run continues the same MLflow run; the resolved
    config as parameters. Talks to the store through ``MlflowClient`` only: no global
    active run is started, so a user's own ``mlflow.start_run`` is left alone."""

    def __init__(self, uri: str, experiment: str, run_dir: Path, params: dict[str, str]) -> None:
        from mlflow.tracking import MlflowClient  # optional: the mlflow extra

        self.client = MlflowClient(tracking_uri=uri)
        found = self.client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else self.client.create_experiment(experiment)
        tag = str(run_dir.resolve())
        runs = self.client.search_runs(
            [experiment_id], filter_string=f"tags.`{RUN_TAG}` = '{_quoted(tag)}'", max_results=1
        )
        if runs:
            run = runs[0]
            self.client.update_run(run.info.run_id, status="RUNNING")
        else:
            run = self.client.create_run(experiment_id, run_name=run_dir.name, tags={RUN_TAG: tag})
        self.run_id = run.info.run_id
        self._log_params(params, already=run.data.params)

    def _log_params(self, params: dict[str, str], already: dict[str, str]) -> None:
        """Parameters are immutable in MLflow: a resumed run keeps those it first logged
        (a resume may change only keys that leave the result alone)."""
        from mlflow.entities import Param  # optional: the mlflow extra

        new = [Param(k, v) for k, v in params.items() if k not in already]
        for start in range(0, len(new), 100):  # MLflow takes at most 100 per batch
            self.client.log_batch(self.run_id, params=new[start : start + 100])

    def log(self, record: dict[str, Any]) -> None:
        from mlflow.entities import Metric  # optional: the mlflow extra

        now = int(time.time() * 1000)
        metrics = [
            Metric(key, value, now, record["epoch"])
            for key, value in scalars(record).items()
            if not math.isnan(value)
        ]
        self.client.log_batch(self.run_id, metrics=metrics)

    def close(self) -> None:
        # Called from the loop's ``finally``: an exception on its way out means the run failed.
        error = sys.exc_info()[1]
        status = "FINISHED" if error is None else "FAILED"
        if isinstance(error, KeyboardInterrupt):
            status = "KILLED"
        self.client.set_terminated(self.run_id, status=status)


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


_URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")  # two letters at least: not C:


def mlflow_tracking_uri(configured: str | None, run: RunDir) -> str:
    """``train.mlflow_uri`` as MLflow takes it: a URI as given (``file:``, ``sqlite:``,
    ``http(s):``, ``databricks``), a folder as a ``file:`` URI (relative to the working
    directory), and None as a file store in the run directory (``RUN/mlruns``)."""
    if configured is None:
        return run.mlruns_dir.resolve().as_uri()
    if configured == "databricks" or _URI_SCHEME.match(configured):
        return configured
    return Path(configured).expanduser().resolve().as_uri()


def config_params(cfg: ExperimentConfig) -> dict[str, str]:
    """The resolved config as dotted ``key: value`` text (MLflow parameters)."""
    flat: dict[str, str] = {}

    def add(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for key, item in value.items():
                add(f"{prefix}.{key}" if prefix else str(key), item)
        else:
            flat[prefix] = str(value)[:6000]  # MLflow's limit on a parameter's value

    add("", to_dict(cfg))
    return flat


def open_mlflow(cfg: ExperimentConfig, run: RunDir) -> MLflowLog:
    uri = mlflow_tracking_uri(cfg.train.mlflow_uri, run)
    if uri.startswith("file:"):
        # MLflow >= 3.7 keeps its file store in maintenance mode and refuses it unless
        # this is set; a folder of files is what a local run needs (no database server).
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    try:
        return MLflowLog(uri, cfg.name, run.path, config_params(cfg))
    except ImportError as err:
        raise UserError(
            "train.loggers names mlflow, but the mlflow package is not installed: "
            "pip install 'pixelwise[mlflow]' (mlflow-skinny) or mlflow"
        ) from err


def open_loggers(cfg: ExperimentConfig, run: RunDir) -> list[Logger]:
    """The configured loggers, opened in the run (for rank 0): TensorBoard where
    ``train.tensorboard`` (skipped with a warning where tensorboard is not installed),
    then ``train.loggers`` in order. If one fails to open, those already open are closed."""
    names = list(cfg.train.loggers)
    if cfg.train.tensorboard and "tensorboard" not in names:
        names.insert(0, "tensorboard")
    opened: list[Logger] = []
    try:
        for name in names:
            if name == "tensorboard":
                try:
                    opened.append(TensorBoardLog(run.tensorboard_dir))
                except ImportError:
                    logger.warning(
                        "train.tensorboard: the tensorboard package is not installed; skipped"
                    )
            elif name == "csv":
                opened.append(CSVLog(run.metrics_csv, run.metrics()))
            elif name == "mlflow":
                opened.append(open_mlflow(cfg, run))
            else:  # config.py's Literal lets no other name through
                raise AssertionError(f"unknown logger {name!r}")
    except BaseException:
        close_loggers(opened)
        raise
    return opened


def close_loggers(loggers: list[Logger]) -> None:
    """Close every logger, even when one of them fails to (the first error is raised)."""
    with contextlib.ExitStack() as stack:
        for opened in reversed(loggers):
            stack.callback(opened.close)
