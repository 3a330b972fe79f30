"""A run directory: its files, its owner, and the one way to open its model.

``RunDir(path)`` takes a run directory or a checkpoint file inside one. Every reader
of a run (``pixelwise eval``, ``predict``, ``report``, ``analyze``, ``export``, a
distillation teacher) opens it through :meth:`RunDir.load_model`, and every file name
of a run is spelled here and nowhere else::

    runs/<name>/
      config.yaml        the resolved config
      splits.json        the seeded split, reused by eval
      metrics.jsonl      one JSON object per epoch (undefined figures as null)
      tensorboard/       the same scalars for TensorBoard
      metrics.csv  mlruns/   the same scalars as a table and for MLflow (train.loggers)
      checkpoints/       best.pt, last.pt, ema.pt (each with a model card)
      plots/  eval/  analysis/  learning.gif  report.html
      .lock              the process that writes the run, while it runs

A run is never overwritten: a new run gets a fresh directory (``name``, ``name-2``,
...), an existing one is continued only with ``--resume``, and one process at a time
writes it (:meth:`RunDir.lock`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .card import ModelCard
from .checkpoint import (
    CheckpointError,
    average_state_dicts,
    check_compatible,
    load_checkpoint,
    read_state_dict,
    save_checkpoint,
)
from .config import ExperimentConfig, load_config, save_config
from .data import DataSplits, build_datasets
from .errors import UserError, cannot_write, writing
from .log import logger

if TYPE_CHECKING:
    import torch
    from torch import nn

Which = Literal["best", "last", "ema"]
CHECKPOINT_NAMES: tuple[str, ...] = ("best", "last", "ema", "averaged")


class RunDirError(UserError):
    """A run directory that is missing, taken by another process, or cannot be written."""


class RunNotFoundError(RunDirError, FileNotFoundError):
    """No run directory, checkpoint or config file where the user pointed."""


@dataclass
class Checkpoint:
    """One checkpoint file read back: its path, its whole state and its card."""

    path: Path
    state: dict[str, Any]
    card: ModelCard

    @property
    def epoch(self) -> int | None:
        return self.state.get("epoch")


class RunDir:
    """A run directory's paths and files (see the module docstring for the layout)."""

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        self.given_checkpoint: Path | None = None
        if path.is_file():
            self.given_checkpoint = path
            path = path.parent.parent if path.parent.name == "checkpoints" else path.parent
            if not (path / "config.yaml").is_file():
                raise RunNotFoundError(
                    f"{self.given_checkpoint}: no config.yaml beside it or one folder up; pass a "
                    "checkpoint inside a pixelwise run directory (runs/<name>/checkpoints/best.pt)"
                )
        elif not path.exists():
            raise RunNotFoundError(f"no run directory or checkpoint at {path}")
        self.path = path
        self._checkpoints: dict[Path, Checkpoint] = {}
        self._models: dict[tuple[str, str], tuple[nn.Module, ModelCard]] = {}
        self._config: ExperimentConfig | None = None
        self._splits: DataSplits | None = None

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # ----------------------------------------------------------------------- paths
    @property
    def config_file(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def plots_dir(self) -> Path:
        return self.path / "plots"

    @property
    def eval_dir(self) -> Path:
        return self.path / "eval"

    @property
    def analysis_dir(self) -> Path:
        return self.path / "analysis"

    @property
    def tensorboard_dir(self) -> Path:
        return self.path / "tensorboard"

    @property
    def metrics_csv(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def mlruns_dir(self) -> Path:
        return self.path / "mlruns"

    @property
    def report_file(self) -> Path:
        return self.path / "report.html"

    @property
    def learning_gif(self) -> Path:
        return self.path / "learning.gif"

    @property
    def lock_file(self) -> Path:
        return self.path / ".lock"

    def checkpoint_file(self, which: str = "best") -> Path:
        """``checkpoints/<which>.pt`` (not checked for existence)."""
        return self.checkpoints_dir / f"{which}.pt"

    def top_checkpoint_file(self, epoch: int) -> Path:
        """``checkpoints/best-eNNN.pt``: epoch ``epoch``, one of ``train.keep_best``."""
        return self.checkpoints_dir / f"best-e{epoch:03d}.pt"

    def top_checkpoints(self) -> list[Path]:
        """The ``train.keep_best`` checkpoints, best first (the ranking ``last.pt`` holds)."""
        ranking = load_checkpoint(self.checkpoint_file("last")).get("top_k") or []
        paths = [self.top_checkpoint_file(int(epoch)) for _, epoch in ranking]
        return [p for p in paths if p.is_file()]

    def average_top_checkpoints(self) -> Path:
        """``checkpoints/averaged.pt``: the weights of the ``train.keep_best`` checkpoints
        averaged (timm's ``avg_checkpoints``), with the best one's card and state."""
        paths = self.top_checkpoints()
        if len(paths) < 2:
            raise RunDirError(
                f"{self.path}: {len(paths)} top checkpoint(s) to average; set "
                "train.keep_best >= 2 (checkpoints/best-eNNN.pt)"
            )
        states = [load_checkpoint(p) for p in paths]
        averaged = {
            **states[0],
            "model": average_state_dicts([s["model"] for s in states]),
            "averaged_epochs": [s["epoch"] for s in states],
        }
        out = self.checkpoint_file("averaged")
        save_checkpoint(averaged, out)
        self._checkpoints.pop(out, None)
        return out

    def find_checkpoint(self, which: str = "best") -> Path:
        """The checkpoint a reader asked for: the file given to ``RunDir`` if any, else
        ``checkpoints/<which>.pt``; a missing one names the checkpoints that exist."""
        if self.given_checkpoint is not None:
            return self.given_checkpoint
        path = self.checkpoint_file(which)
        if not path.is_file():
            present = sorted(p.name for p in self.checkpoints_dir.glob("*.pt"))
            has = f"it has {', '.join(present)}" if present else "it has no checkpoint yet"
            raise RunNotFoundError(
                f"{self.path} has no checkpoints/{which}.pt ({has}); "
                + ("choose one with --checkpoint" if present else "is it a pixelwise run?")
            )
        return path

    # ----------------------------------------------------------------------- files
    def config(self, overrides: list[str] | None = None) -> ExperimentConfig:
        """The run's resolved config as trained (``config.yaml``), with ``overrides``
        (dotted ``key=value`` strings as a user typed them) on top."""
        if not self.config_file.is_file():
            raise RunNotFoundError(
                f"{self.path} has no config.yaml: is it a pixelwise run directory?"
            )
        if overrides:
            return load_config(self.config_file, overrides)
        if self._config is None:
            self._config = load_config(self.config_file)
        return self._config

    def splits(self) -> DataSplits:
        """The run's data, split as in training (``splits.json``)."""
        if self._splits is None:
            self._splits = build_datasets(self.config(), self.path)
        return self._splits

    def chosen_on_test(self) -> bool:
        """Whether ``best.pt`` was chosen on the test split's figures: the validation
        split is the test split (``cifar10_fast`` reports test accuracy each epoch) and
        the best metric is a validation figure."""
        if self.given_checkpoint is not None or not self.config_file.is_file():
            return False
        cfg = self.config()
        return cfg.data.val_split == cfg.data.test_split and cfg.best_metric.startswith("val")

    def default_checkpoint(self) -> str:
        """The checkpoint the run's figures stand for, which every reader (the final
        evaluation, ``eval``, the report, ``analyze``, a distillation teacher) uses:
        ``best``, else ``last`` where only that exists; where ``best.pt`` was chosen on
        the test split (``chosen_on_test``), the weights nothing chose: ``ema`` when the
        best metric was the EMA's, else ``last``."""
        if self.chosen_on_test():
            ema = self.config().best_metric.startswith("val_ema")
            if ema and self.checkpoint_file("ema").is_file():
                return "ema"
            if self.checkpoint_file("last").is_file():
                return "last"
        exists = {which: self.checkpoint_file(which).is_file() for which in ("best", "last")}
        if self.given_checkpoint is None and not exists["best"] and exists["last"]:
            return "last"
        return "best"  # where neither exists, the error names best.pt

    def save_config(self, cfg: ExperimentConfig) -> None:
        with self.writing(self.config_file):
            save_config(cfg, self.config_file)

    def metrics(self) -> list[dict[str, Any]]:
        """Every epoch record of ``metrics.jsonl`` (null read back as NaN)."""
        if not self.metrics_file.is_file():
            return []
        lines = self.metrics_file.read_text().splitlines()
        return [_nan_from_null(json.loads(line)) for line in lines if line.strip()]

    def append_metrics(self, record: dict[str, Any]) -> None:
        """One epoch's line; an undefined figure (NaN) is written as null (strict JSON)."""
        with self.writing(self.metrics_file), self.metrics_file.open("a") as f:
            f.write(json.dumps(json_safe(record), allow_nan=False) + "\n")

    def truncate_metrics(self, epochs: int) -> list[dict[str, Any]]:
        """Keep the records of the first ``epochs`` epochs (those a checkpoint holds) and
        return them: a resumed run never repeats an epoch's line."""
        kept = [r for r in self.metrics() if int(r.get("epoch", 0)) <= epochs]
        text = "".join(json.dumps(json_safe(r), allow_nan=False) + "\n" for r in kept)
        with self.writing(self.metrics_file):
            self.metrics_file.write_text(text)
        return kept

    def eval_file(
        self, split: str, checkpoint: str = "best", tta: bool = False, sliding: bool = False
    ) -> Path:
        """``eval/<split>[-<checkpoint>][-tta][-sliding].json``: every evaluation keeps
        its own file, so one never overwrites another (``best`` plain is ``<split>.json``)."""
        name = split + ("" if checkpoint == "best" else f"-{checkpoint}")
        name += "-tta" if tta else ""
        name += "-sliding" if sliding else ""
        return self.eval_dir / f"{name}.json"

    def confusion_plot_file(self, stem: str) -> Path:
        """``plots/confusion_<stem>.png``: the picture of the evaluation ``eval/<stem>.json``."""
        return self.plots_dir / f"confusion_{stem}.png"

    def evaluations(self) -> dict[str, dict[str, Any]]:
        """Every saved evaluation by file stem (``test``, ``test-last-tta``, ...)."""
        if not self.eval_dir.is_dir():
            return {}
        return {p.stem: json.loads(p.read_text()) for p in sorted(self.eval_dir.glob("*.json"))}

    def headline_evaluation(self) -> tuple[str, dict[str, Any]] | None:
        """The evaluation a summary shows: the best checkpoint, plain, on the test split,
        else on the validation split, else the first saved; ``(file stem, payload)``.
        The checkpoint is ``default_checkpoint``'s (``last`` where ``best.pt`` was chosen
        on the test split), plain or with test-time augmentation."""
        saved = self.evaluations()
        if not saved:
            return None
        cfg = self.config()
        checkpoint = self.default_checkpoint()
        stems = [
            self.eval_file(split, checkpoint, tta).stem
            for split in (cfg.data.test_split, cfg.data.val_split)
            for tta in (False, True)
        ]
        for stem in stems:
            if stem in saved:
                return stem, saved[stem]
        stem = next(iter(saved))
        return stem, saved[stem]

    # ----------------------------------------------------------------------- checkpoints
    def read_checkpoint(self, which: str = "best") -> Checkpoint:
        """A checkpoint's state and card (read once per file, ``weights_only``)."""
        path = self.find_checkpoint(which)
        if path not in self._checkpoints:
            state = load_checkpoint(path)
            card = ModelCard.from_dict(state.get("card"), str(path))
            self._checkpoints[path] = Checkpoint(path, state, card)
        return self._checkpoints[path]

    def load_model(
        self, which: str = "best", device: str | torch.device = "cpu"
    ) -> tuple[nn.Module, ModelCard]:
        """The checkpoint's weights in the architecture its card names, in eval mode
        (built once per checkpoint and device)."""
        key = (which, str(device))
        if key not in self._models:
            checkpoint = self.read_checkpoint(which)
            source = str(checkpoint.path)
            model = model_from_state(checkpoint.card, checkpoint.state["model"], source)
            self._models[key] = (model.to(device).eval(), checkpoint.card)
        return self._models[key]

    def load_weights(self, model: nn.Module, which: str = "best") -> nn.Module:
        """A checkpoint's weights loaded into ``model`` (a user's own model object, which
        a card cannot rebuild), after the compatibility check; returned in eval mode."""
        checkpoint = self.read_checkpoint(which)
        check_compatible(model, checkpoint.state["model"], str(checkpoint.path))
        model.load_state_dict(checkpoint.state["model"])
        return model.eval()

    # ----------------------------------------------------------------------- ownership
    def writing(self, path: Path) -> contextlib.AbstractContextManager[None]:
        """An ``OSError`` while writing ``path`` (a full disk, a read-only folder) as one
        line naming the path and the reason."""
        return writing(path, RunDirError)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Own the run for the duration: a second process writing it is refused, naming
        the process that holds it. A lock left by a process that died is taken over."""
        mine = json.dumps({"pid": os.getpid(), "host": socket.gethostname()})
        for _attempt in range(2):
            try:
                fd = os.open(self.lock_file, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self.refuse_if_locked()
                logger.warning(f"{self.lock_file}: left by a process that is gone; taken over")
                self.lock_file.unlink(missing_ok=True)
                continue
            except OSError as err:
                raise RunDirError(cannot_write(self.lock_file, err)) from err
            with os.fdopen(fd, "w") as f:
                f.write(mine)
            break
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                if self.lock_file.read_text() == mine:
                    self.lock_file.unlink()

    def refuse_if_locked(self) -> None:
        """Raise naming the live process that holds the run's lock, if one does. The
        message says how to free a lock that only looks held: one written on another
        host, an unreadable one, or a pid that a reboot gave to another program."""
        holder = self.lock_holder() if self.lock_file.exists() else None
        if holder is not None:
            raise RunDirError(
                f"{self.path} is being written by process {holder} (its lock: "
                f"{self.lock_file}); wait for it to finish, or choose another --run-dir "
                "(if no pixelwise process writes this run, delete the lock)"
            )

    def lock_holder(self) -> str | None:
        """``"PID on HOST"`` of a live process holding the lock, else None (stale)."""
        try:
            holder = json.loads(self.lock_file.read_text() or "{}")
            pid, host = int(holder["pid"]), str(holder["host"])
        except (OSError, ValueError, KeyError, TypeError):
            return "unknown (unreadable lock file)"
        if host != socket.gethostname():
            return f"{pid} on {host}"  # cannot tell from here: assume it lives
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return f"{pid} on {host}"

    def remove_temporary_files(self) -> list[Path]:
        """Delete ``.*.tmp`` files a killed writer left in ``checkpoints/``."""
        removed = []
        for tmp in self.checkpoints_dir.glob(".*.tmp"):
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed.append(tmp)
        if removed:
            logger.info(f"removed {len(removed)} unfinished checkpoint file(s) of a killed run")
        return removed

    def discard_unfinished(self) -> None:
        """Remove what a run killed before its first checkpoint left (its config,
        metrics, split, pictures), so that ``--resume auto`` starts it afresh; a run
        with a checkpoint, or one a live process holds (still in its first epoch), is
        never touched."""
        self.refuse_if_locked()
        if any(self.checkpoints_dir.glob("*.pt")):
            raise RunDirError(f"{self.path} holds checkpoints: resume it instead")
        owned = [self.config_file, self.metrics_file, self.path / "splits.json"]
        owned += [self.tensorboard_dir, self.plots_dir, self.eval_dir, self.checkpoints_dir]
        owned += [self.metrics_csv, self.mlruns_dir]
        for path in owned:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)

    def holds_an_epoch(self) -> bool:
        return bool(self.metrics()) or any(self.checkpoints_dir.glob("*.pt"))


# --------------------------------------------------------------------------- making runs
def new_run_dir(output_dir: str | Path, name: str) -> Path:
    """``output_dir/name``, or ``name-2``, ``name-3``... if taken: never overwrite a run.
    The directory is created atomically, so two processes never get the same one."""
    base = Path(output_dir)
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunDirError(cannot_write(base, err)) from err
    n = 1
    while True:
        candidate = base / (name if n == 1 else f"{name}-{n}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            n += 1
        except OSError as err:
            raise RunDirError(cannot_write(candidate, err)) from err


def open_for_training(output_dir: str, name: str, path: Path | None, resume: bool) -> RunDir:
    """The directory a training run writes: a new one, or ``path`` (which must be new or
    empty unless ``resume``: a run is never reused by accident)."""
    if path is None:
        if resume:
            raise RunDirError("--resume needs --run-dir RUN_DIR (the run to continue)")
        return RunDir(new_run_dir(output_dir, name))
    path = Path(path)
    if path.is_dir():  # another trainer at work: say so before anything else
        RunDir(path).refuse_if_locked()
    if resume:
        if not (path / "config.yaml").is_file():
            raise RunDirError(f"--resume: {path} is not a pixelwise run (no config.yaml)")
        return RunDir(path)
    if path.exists() and any(p.name != ".lock" for p in path.iterdir()):
        raise RunDirError(
            f"{path} already holds files ({', '.join(sorted(p.name for p in path.iterdir())[:4])}); "
            "continue that run with --resume, or choose another --run-dir: a run is never "
            "overwritten"
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunDirError(cannot_write(path, err)) from err
    return RunDir(path)


def decide_resume(path: Path | None, mode: bool | str | None) -> bool:
    """Whether ``--resume`` (``mode`` True) or ``--resume auto`` continues ``path``.

    ``--resume`` needs ``checkpoints/last.pt``; ``--resume auto`` starts afresh where
    there is none, discarding what a run killed before its first checkpoint left."""
    if mode is None or mode is False:
        return False
    if path is None:
        raise RunDirError("--resume needs --run-dir RUN_DIR (the run to continue)")
    last = Path(path) / "checkpoints" / "last.pt"
    if last.is_file():
        return True
    if mode != "auto":
        raise RunNotFoundError(
            f"{last} not found: nothing to resume (--resume auto starts fresh instead)"
        )
    if Path(path).is_dir():
        RunDir(path).discard_unfinished()
    return False


def remove_if_empty_run(run: RunDir) -> None:
    """A run that failed before its first epoch leaves nothing behind (its directory
    would only push the next attempt to ``name-2``). A directory another live process
    has locked is its own, and stays."""
    if run.holds_an_epoch() or (run.lock_file.exists() and run.lock_holder() is not None):
        return
    shutil.rmtree(run.path, ignore_errors=True)
    logger.info(f"removed {run.path}: the run stopped before its first epoch")


# --------------------------------------------------------------------------- models
def model_from_state(card: ModelCard, state_dict: dict[str, Any], source: str) -> nn.Module:
    """``card.build()`` with ``state_dict`` loaded after a compatibility check that
    fails with one sentence."""
    model = card.build()
    check_compatible(model, state_dict, source)
    model.load_state_dict(state_dict)
    return model


def is_hf_folder(path: Path) -> bool:
    """A folder as ``save_pretrained`` writes one: ``config.json`` + ``model.safetensors``."""
    return (
        path.is_dir()
        and (path / "config.json").is_file()
        and (path / "model.safetensors").is_file()
    )


def read_hf_folder(path: Path) -> tuple[ModelCard, dict[str, Any]]:
    """(card, state dict) of a Hugging Face-style folder: pixelwise's own (its card in
    ``config.json``), or timm's layout for an architecture of the zoo with the same
    tensor names (``architecture``, ``num_classes``, ``in_chans``, ``pretrained_cfg``)."""

    config = json.loads((path / "config.json").read_text())
    state = read_state_dict(path / "model.safetensors")
    if "pixelwise_card" in config:
        return ModelCard.from_dict(config["pixelwise_card"], str(path)), state
    if "architecture" not in config:
        raise CheckpointError(f"{path}/config.json names no architecture (nor a pixelwise card)")
    pretrained = config.get("pretrained_cfg") or {}
    channels, height, width = pretrained.get("input_size") or [config.get("in_chans", 3), 224, 224]
    num_classes = int(config.get("num_classes", 1000))
    names = config.get("label_names") or [str(i) for i in range(num_classes)]
    card = ModelCard.from_dict(
        {
            "card_version": 2,
            "task": pretrained.get("task", "classification"),
            "model": config["architecture"],
            "class_names": names,
            "in_channels": config.get("in_chans", channels),
            "image_size": [height, width],
            "preprocessing": {
                "resize": [height, width],
                "mean": pretrained.get("mean") or [],
                "std": pretrained.get("std") or [],
                "normalize": bool(pretrained.get("mean")),
            },
        },
        str(path),
    )
    return card, state


def read_model_file(path: str | Path) -> tuple[ModelCard, dict[str, Any]]:
    """(card, state dict) of a loose ``.pt`` checkpoint, a ``.safetensors`` export or a
    Hugging Face-style folder (``config.json`` + ``model.safetensors``)."""
    path = Path(path)
    if is_hf_folder(path):
        return read_hf_folder(path)
    if path.suffix == ".safetensors":
        from safetensors import safe_open  # optional dependency (the export extra)
        from safetensors.torch import load_file

        try:
            with safe_open(str(path), framework="pt") as f:
                metadata = f.metadata() or {}
            state = load_file(str(path))
        except Exception as err:  # a header that does not parse
            raise CheckpointError(f"{path}: not a readable safetensors file: {err}") from err
        raw = json.loads(metadata["pixelwise_card"]) if "pixelwise_card" in metadata else None
        return ModelCard.from_dict(raw, str(path)), state
    checkpoint = load_checkpoint(path)
    return ModelCard.from_dict(checkpoint.get("card"), str(path)), checkpoint["model"]


# --------------------------------------------------------------------------- helpers
def json_safe(value: Any) -> Any:
    """NaN and infinities (undefined figures) as null: strict JSON every parser reads."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    return value


def _nan_from_null(record: dict[str, Any]) -> dict[str, Any]:
    """Top-level nulls of a metrics record back to NaN, the in-memory 'undefined'."""
    return {k: (math.nan if v is None else v) for k, v in record.items()}
