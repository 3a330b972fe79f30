"""Torture: broken datasets, configs, checkpoints and crashes, each through the real CLI.

Every row of ``BAD_INPUTS`` builds one bad input in a temporary folder (no network, no
shared data) and runs ``pixelwise data check``, ``train``, ``eval`` or ``predict``
against it, asserting the one-line message, the exit status and that nothing valid
was lost. ``pytest tests/test_torture.py -q`` prints "N passed": N bad inputs handled
cleanly (issue 15); ``-m torture`` selects them inside the whole suite.

The CLI runs in-process (``pixelwise.cli.main``) except where a real process has to
die or print an uncaught traceback: there ``python -m pixelwise`` runs in a subprocess.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pixelwise.cli import main
from pixelwise.log import logger, setup_logging
from pixelwise.run import RunDir

SRC = str(Path(__file__).resolve().parents[1] / "src")

# The digits quick start cut to seconds: 8x8 images, 180 to train, a 4-wide CNN.
TINY = [
    "train.epochs=1",
    "schedule.warmup_epochs=0",
    "train.tensorboard=false",
    "train.report=false",
    "train.learning_gif=false",
    "data.image_size=[8, 8]",
    "data.crop_padding=1",
    "data.batch_size=32",
    "data.val_fraction=0.1",
    "data.test_fraction=0.8",
    "model.options={width: 4, dropout: 0.0}",
]


# --------------------------------------------------------------------------- harness
@dataclass
class Outcome:
    """What a person sees of one command: its exit status and its two streams."""

    code: int
    out: str
    err: str

    def error_line(self, *fragments: str, alone: bool = False) -> str:
        """The one ``pixelwise CMD: error: ...`` line of a refused command (status 2, no
        traceback), checked to contain every fragment; ``alone``: stderr holds nothing else
        (no warning either)."""
        assert self.code == 2, f"exit {self.code}, stderr:\n{self.err}"
        assert "Traceback" not in self.err, self.err
        if alone:
            assert len(self.err.strip().splitlines()) == 1, self.err
        errors = [line for line in self.err.splitlines() if ": error: " in line]
        assert len(errors) == 1, self.err
        line = errors[0]
        for fragment in fragments:
            assert fragment in line, f"{fragment!r} not in {line!r}"
        assert "weights_only=False" not in self.err
        return line


@dataclass
class Torture:
    """One case's tools: a temporary folder, the CLI, monkeypatch and the module's run."""

    tmp: Path
    capsys: pytest.CaptureFixture
    monkeypatch: pytest.MonkeyPatch
    request: pytest.FixtureRequest

    def cli(self, *argv: str | Path) -> Outcome:
        self.capsys.readouterr()
        code = main([str(a) for a in argv])
        captured = self.capsys.readouterr()
        return Outcome(code, captured.out, captured.err)

    def subprocess(self, *argv: str | Path, timeout: float = 120) -> Outcome:
        """``python -m pixelwise ...`` (or ``python -c CODE`` when argv starts with -c)."""
        env = {**os.environ, "PYTHONPATH": SRC, "PIXELWISE_QUIET": "1"}
        command = [sys.executable, *(["-m", "pixelwise"] if argv[0] != "-c" else [])]
        done = subprocess.run(
            [*command, *map(str, argv)],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            cwd=self.tmp,
        )
        return Outcome(done.returncode, done.stdout, done.stderr)

    def trained_run(self) -> Path:
        """A copy of the module's finished one-epoch digits run, free to damage."""
        source = self.request.getfixturevalue("trained_digits")
        copy = self.tmp / "trained"
        shutil.copytree(source, copy)
        return copy

    def train_digits(self, run_dir: Path, *overrides: str, resume: bool = False) -> Outcome:
        """``pixelwise train digits`` at the TINY size into ``run_dir``."""
        argv = ["train", "digits", *TINY, f"output_dir={self.tmp}", *overrides]
        return self.cli(*argv, "--run-dir", run_dir, *(["--resume"] if resume else []))


@dataclass
class BadInput:
    name: str
    run: Callable[[Torture], None]
    lead: str | None = None  # why it is expected to fail until the lead's change lands

    def param(self):
        marks = [pytest.mark.xfail(strict=True, reason=f"lead: {self.lead}")] if self.lead else []
        return pytest.param(self, id=self.name, marks=marks)


BAD_INPUTS: list[BadInput] = []


def bad_input(name: str, lead: str | None = None):
    def register(run: Callable[[Torture], None]) -> Callable[[Torture], None]:
        BAD_INPUTS.append(BadInput(name, run, lead))
        return run

    return register


@pytest.fixture(scope="module")
def trained_digits(tmp_path_factory) -> Path:
    """One finished digits run (config, splits, metrics, best.pt, last.pt, eval/test.json)
    that the eval, predict and resume cases copy."""
    root = tmp_path_factory.mktemp("trained")
    run_dir = root / "run"
    code = main(["train", "digits", *TINY, f"output_dir={root}", "--run-dir", str(run_dir)])
    assert code == 0
    return run_dir


class CurrentStderr:
    """A stream that is whatever ``sys.stderr`` is when written: capsys's in a test."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


@pytest.fixture
def torture(tmp_path, capsys, monkeypatch, request) -> Torture:
    # The CLI's log handler keeps the stderr of its first call: point it at the test's.
    setup_logging(quiet=True)
    for handler in logger.handlers:
        if type(handler) is logging.StreamHandler:
            monkeypatch.setattr(handler, "stream", CurrentStderr())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PIXELWISE_QUIET", "1")
    monkeypatch.delenv("PIXELWISE_DEBUG", raising=False)
    return Torture(tmp_path, capsys, monkeypatch, request)


# --------------------------------------------------------------------------- builders
def pixels(height: int, width: int, seed: int, channels: int = 3) -> np.ndarray:
    shape = (height, width, channels) if channels > 1 else (height, width)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def save_image(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array)
    if mode == "P":
        image = image.quantize(colors=16)
    image.save(path)
    return path


def class_folders(root: Path, counts: dict[str, int], ext: str = ".png", seed: int = 0) -> Path:
    for c, (name, count) in enumerate(counts.items()):
        for i in range(count):
            save_image(root / name / f"{i:03d}{ext}", pixels(8, 8, seed + 1000 * c + i))
    return root


def write_config(
    tmp: Path, data: dict, task: str = "classification", name: str = "cfg", **sections
) -> Path:
    """A small config file: 8x8 images, a 4-wide model, one epoch, no extras."""
    model = {"name": "small_cnn", "options": {"width": 4, "dropout": 0.0}}
    if task == "segmentation":
        model = {"name": "unet", "options": {"base_channels": 2}}
    config = {
        "name": name,
        "task": task,
        "output_dir": str(tmp / "runs"),
        "data": {"image_size": [8, 8], "batch_size": 8, "augment": "none", **data},
        "model": model,
        "optim": {"name": "sgd", "lr": 0.05},
        "schedule": {"warmup_epochs": 0},
        "train": {"epochs": 1, "tensorboard": False, "report": False, "learning_gif": False},
        **sections,
    }
    path = tmp / f"{name}.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def folder_config(tmp: Path, root: Path, **data) -> Path:
    return write_config(tmp, {"format": "image_folder", "root": str(root), **data})


def files_of(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes: 'untouched' means equal to this."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def epochs_recorded(run_dir: Path) -> list[int]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["epoch"] for line in lines if line.strip()]


def load_state(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def finite(state: dict) -> bool:
    return all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def lock_of(pid: int) -> str:
    """A run's ``.lock`` as ``RunDir.lock`` writes it, for process ``pid`` here."""
    return json.dumps({"pid": pid, "host": socket.gethostname()})


def stale_lock() -> str:
    """The lock of a process that has exited (and been reaped): what a kill leaves."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return lock_of(child.pid)


class Payload:
    """Unpickling this calls ``os.system``: what a crafted file carries."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


# =========================================================================== data
@bad_input("jpeg-binary-masks")
def _(t: Torture) -> None:
    """0/255 masks saved as JPEG: check names the lossy files and the stored values;
    training reads them thresholded at the midpoint and finishes."""
    yy, xx = np.mgrid[:24, :24]
    for i in range(6):
        save_image(t.tmp / "data" / "images" / f"{i}.png", pixels(24, 24, i))
        disk = ((yy - 8 - i) ** 2 + (xx - 10) ** 2 <= 36).astype(np.uint8) * 255
        save_image(t.tmp / "data" / "masks" / f"{i}.jpg", disk)  # JPEG's halo round the disk
    config = write_config(
        t.tmp,
        {"format": "mask_folder", "root": str(t.tmp / "data"), "mask_mode": "binary"},
        task="segmentation",
    )
    check = t.cli("data", "check", config)
    assert check.code == 0, check.out + check.err
    assert "[lossy_mask] 6 of 6 mask files are JPEG" in check.out
    assert "stored mask values: 0:" in check.out and "JPEG" in check.out
    train = t.cli("train", config, "--run-dir", t.tmp / "run")
    assert train.code == 0, train.err
    from pixelwise.config import load_config
    from pixelwise.data import build_datasets

    splits = build_datasets(load_config(config), None)
    _, mask = splits.raw["train"][0]
    assert set(torch.unique(torch.as_tensor(mask)).tolist()) <= {0, 1}


@bad_input("symlink-loop-in-class-folder")
def _(t: Torture) -> None:
    """``class_a/loop -> ..``: listed once, a warning, no training image in val."""
    root = class_folders(t.tmp / "data", {"class_a": 8, "class_b": 8})
    (root / "class_a" / "loop").symlink_to("..")
    config = folder_config(t.tmp, root, val_fraction=0.25, test_fraction=0.25)
    check = t.cli("data", "check", config)
    assert check.code == 0, check.out
    assert "[link_loop]" in check.out and "duplicates_across_splits" not in check.out
    assert "WARNING" not in check.out
    train = t.cli("train", config, "--run-dir", t.tmp / "run")
    assert train.code == 0, train.err
    splits = json.loads((t.tmp / "run" / "splits.json").read_text())
    assert splits["source_size"] == 16


@bad_input("duplicates-across-splits")
def _(t: Torture) -> None:
    root = class_folders(t.tmp / "data" / "train", {"a": 4, "b": 4}).parent
    class_folders(root / "test", {"a": 2, "b": 2}, seed=77)
    shutil.copy(root / "train" / "b" / "001.png", root / "test" / "b" / "copy.png")
    check = t.cli("data", "check", folder_config(t.tmp, root, val_fraction=0.0))
    assert check.code == 0, check.out
    [loud] = [line for line in check.out.splitlines() if line.startswith("WARNING")]
    assert "[duplicates_across_splits] 1 image(s) are in more than one split" in loud
    assert "copy.png" in loud


@bad_input("palette-gif-among-jpegs")
def _(t: Torture) -> None:
    root = class_folders(t.tmp / "data", {"a": 50, "b": 50}, ext=".jpg")
    save_image(root / "b" / "placeholder.gif", pixels(8, 8, 999), "P")
    config = folder_config(t.tmp, root, val_fraction=0.0, test_fraction=0.0)
    check = t.cli("data", "check", config)
    assert check.code == 0, check.out
    assert "[rare_image_kind]" in check.out and "placeholder.gif" in check.out
    assert "GIF P" in check.out


@bad_input("zero-byte-image")
def _(t: Torture) -> None:
    root = class_folders(t.tmp / "data", {"a": 4, "b": 4})
    (root / "a" / "empty.png").write_bytes(b"")
    config = folder_config(t.tmp, root, val_fraction=0.25, test_fraction=0.0)
    check = t.cli("data", "check", config)
    assert check.code == 1 and "[empty_file]" in check.out and "empty.png" in check.out
    t.cli("train", config, "--run-dir", t.tmp / "run").error_line("empty.png", "empty file")


@bad_input("non-image-file")
def _(t: Torture) -> None:
    root = class_folders(t.tmp / "data", {"a": 4, "b": 4})
    (root / "b" / "page.jpg").write_bytes(b"<html><body>403 Forbidden</body></html>")
    config = folder_config(t.tmp, root, val_fraction=0.25, test_fraction=0.0)
    check = t.cli("data", "check", config)
    assert check.code == 1 and "[not_an_image]" in check.out and "page.jpg" in check.out
    t.cli("train", config, "--run-dir", t.tmp / "run").error_line("page.jpg", "not an image")


@bad_input("class-folder-with-only-non-images")
def _(t: Torture) -> None:
    root = class_folders(t.tmp / "data", {"a": 4, "b": 4})
    (root / "c").mkdir()
    (root / "c" / "notes.txt").write_text("to do")
    (root / "c" / "photo.heic").write_bytes(b"\0" * 16)
    config = folder_config(t.tmp, root)
    line = t.cli("data", "check", config).error_line(f"{root / 'c'}", "notes.txt")
    assert "no image files" in line
    t.cli("train", config, "--run-dir", t.tmp / "run").error_line(f"{root / 'c'}", "no image")
    assert not (t.tmp / "run").exists()


@bad_input("empty-class-folder")
def _(t: Torture) -> None:
    """Refused, naming the folder, unless the classes are listed explicitly."""
    root = class_folders(t.tmp / "data", {"a": 6, "b": 6})
    (root / "c").mkdir()
    config = folder_config(t.tmp, root, val_fraction=0.25, test_fraction=0.0)
    refused = t.cli("train", config, "--run-dir", t.tmp / "r1")
    refused.error_line(str(root / "c"), "data.class_names")
    listed = t.cli("train", config, "data.class_names=[a, b, c]", "--run-dir", t.tmp / "r2")
    assert listed.code == 0, listed.err


@bad_input("image-label-names-do-not-pair")
def _(t: Torture) -> None:
    """DRIVE's ``21_training.tif`` with ``21_manual1.gif``: 'no pairs', both sides shown."""
    for i in (21, 22, 23):
        save_image(t.tmp / "data" / "images" / f"{i}_training.tif", pixels(8, 8, i))
        save_image(t.tmp / "data" / "masks" / f"{i}_manual1.gif", pixels(8, 8, i, 1) // 128)
    config = write_config(
        t.tmp,
        {"format": "mask_folder", "root": str(t.tmp / "data"), "num_classes": 2},
        task="segmentation",
    )
    for command in (("data", "check", config), ("train", config)):
        t.cli(*command).error_line(
            "no image/mask pairs", "21_training.tif", "21_manual1.gif", "data.list_file"
        )


@bad_input("crafted-cifar-pickle")
def _(t: Torture) -> None:
    """The payload of a crafted batch file never runs, in check or train."""
    folder = t.tmp / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), "labels": [0, 1, 2, 3]}
        (folder / name).write_bytes(pickle.dumps(batch))
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship"]
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [*names, "truck"]}))
    marker = t.tmp / "payload_ran"
    crafted = {"data": Payload(f"touch {marker}"), "labels": [0]}
    (folder / "data_batch_3").write_bytes(pickle.dumps(crafted))
    config = write_config(t.tmp, {"format": "cifar10", "root": str(t.tmp / "data")})
    for command in (("data", "check", config), ("train", config)):
        t.cli(*command).error_line("data_batch_3", "refused to load", "nothing in it was run")
    assert not marker.exists()


@bad_input("predict-non-utf8-file-name")
def _(t: Torture) -> None:
    """A file name that is not UTF-8 is listed as failed; the others are predicted and
    the CSV holds every one of them."""
    run = t.trained_run()
    inputs = t.tmp / "inputs"
    for i in range(3):
        save_image(inputs / f"ok{i}.png", pixels(8, 8, i, 1))
    odd = os.fsdecode(b"caf\xe9-\xff.png")  # Latin-1 bytes: not UTF-8
    save_image(inputs / odd, pixels(8, 8, 9, 1))
    result = t.cli("predict", run, inputs, "--out", t.tmp / "out", "--topk", "2")
    assert result.code == 1, result.err
    assert "Traceback" not in result.err
    assert "1 input(s) failed" in result.err and "caf" in result.err and "UTF-8" in result.err
    rows = (t.tmp / "out" / "predictions.csv").read_text().splitlines()
    predicted = [row.split(",")[0].rsplit("/", 1)[-1] for row in rows[1:]]
    assert predicted == ["ok0.png", "ok1.png", "ok2.png"]
    summary = json.loads((t.tmp / "out" / "predictions.json").read_text())
    assert len(summary["predictions"]) == 3 and len(summary["failed"]) == 1


@bad_input("predict-zero-byte-and-non-image")
def _(t: Torture) -> None:
    run = t.trained_run()
    inputs = t.tmp / "inputs"
    save_image(inputs / "good.png", pixels(8, 8, 0, 1))
    (inputs / "empty.png").write_bytes(b"")
    (inputs / "page.jpg").write_bytes(b"<html>not found</html>")
    result = t.cli("predict", run, inputs, "--out", t.tmp / "out")
    assert result.code == 1 and "Traceback" not in result.err
    assert "BytesIO" not in result.err
    failed = json.loads((t.tmp / "out" / "predictions.json").read_text())["failed"]
    assert any("empty.png" in f and "empty file" in f for f in failed), failed
    assert any("page.jpg" in f and "not an image" in f for f in failed), failed
    rows = (t.tmp / "out" / "predictions.csv").read_text().splitlines()
    assert len(rows) == 2 and "good.png" in rows[1]


@bad_input("model-that-predicts-one-class")
def _(t: Torture) -> None:
    """A model whose every prediction is class 0: one warning after the first
    validation (not one per epoch) naming the remedies and their keys."""
    from pixelwise.engine import build
    from pixelwise.metrics import prediction_coverage

    original = build.build_model

    def always_class_zero(cfg, num_classes):
        model = original(cfg, num_classes)
        bias = torch.zeros(num_classes)
        bias[0] = 1e4
        model.register_forward_hook(lambda module, inputs, output: output + bias)
        return model

    t.monkeypatch.setattr(build, "build_model", always_class_zero)
    result = t.train_digits(t.tmp / "run", "train.epochs=2")
    assert result.code == 0, result.err
    warnings = [line for line in result.err.splitlines() if "every prediction is class" in line]
    expected = prediction_coverage(torch.tensor([[5, 0], [3, 0]]), ["0", "1"])
    assert len(warnings) == 1 and warnings[0].endswith(expected), result.err
    for key in ("data.class_weights", "loss.terms", "dice", "focal"):
        assert key in warnings[0]
    # A loss that already weighs classes is told to weigh them harder instead.
    weighted = t.train_digits(
        t.tmp / "weighted", "train.epochs=1", "data.class_weights=inverse_frequency"
    )
    assert weighted.code == 0, weighted.err
    lines = [line for line in weighted.err.splitlines() if "every prediction is class" in line]
    assert len(lines) == 1 and "stronger class weights (data.class_weight_power" in lines[0]


# =========================================================================== configs
@bad_input("empty-config-file")
def _(t: Torture) -> None:
    config = t.tmp / "empty.yaml"
    config.write_text("")
    t.cli("train", config, "--run-dir", t.tmp / "run").error_line(str(config), "empty")
    assert not (t.tmp / "run").exists()


@bad_input("comment-only-config-file")
def _(t: Torture) -> None:
    config = t.tmp / "todo.yaml"
    config.write_text("# fill in later\n# task: segmentation\n")
    for command in (("train", config), ("data", "check", config)):
        t.cli(*command).error_line(str(config), "empty")
    assert not (t.tmp / "runs").exists()


@bad_input("config-without-task-or-format")
def _(t: Torture) -> None:
    config = t.tmp / "partial.yaml"
    config.write_text("optim: {lr: 0.1}\n")
    t.cli("train", config).error_line(str(config), "task")


@bad_input("yaml-syntax-error")
def _(t: Torture) -> None:
    config = t.tmp / "broken.yaml"
    config.write_text("task: classification\ndata:\n  format: digits\n  size: 32\n    lr: 1\n")
    t.cli("train", config).error_line(f"{config}:5:7:", "invalid YAML")  # file:line:column


# =========================================================================== run directory
@bad_input("run-dir-exists-without-resume")
def _(t: Torture) -> None:
    """Refused, and the old run's files are untouched byte for byte."""
    run = t.trained_run()
    before = files_of(run)
    t.train_digits(run).error_line(str(run), "--resume", "never overwritten")
    assert files_of(run) == before


@bad_input("two-trainers-on-one-run-dir")
def _(t: Torture) -> None:
    """The second trainer is refused naming the first's pid, with or without --resume,
    and writes nothing."""
    run = t.trained_run()
    first = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        (run / ".lock").write_text(lock_of(first.pid))
        before = files_of(run)
        t.train_digits(run, "train.epochs=1", resume=True).error_line(
            str(first.pid), "being written by"
        )
        fresh = t.tmp / "fresh"
        fresh.mkdir()
        (fresh / ".lock").write_text(lock_of(first.pid))
        t.train_digits(fresh).error_line(str(first.pid), "being written by")
        assert files_of(run) == before and [p.name for p in fresh.iterdir()] == [".lock"]
    finally:
        first.kill()
        first.wait()


@bad_input("unreadable-lock-file")
def _(t: Torture) -> None:
    """An empty ``.lock`` (a kill between creating and writing it) cannot be checked:
    refused, saying which file to delete once no trainer runs."""
    run = t.trained_run()
    (run / ".lock").write_text("")
    before = files_of(run)
    t.train_digits(run, resume=True).error_line("unreadable", str(run / ".lock"), "delete")
    assert files_of(run) == before


@bad_input("resume-auto-while-another-trainer-is-in-its-first-epoch")
def _(t: Torture) -> None:
    """``--resume auto`` discards a run killed before its first checkpoint, but not one
    whose trainer is alive and simply has not written it yet."""
    run = t.trained_run()
    shutil.rmtree(run / "checkpoints")
    shutil.rmtree(run / "eval")
    first = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        (run / ".lock").write_text(lock_of(first.pid))
        before = files_of(run)
        argv = ["train", "digits", *TINY, f"output_dir={t.tmp}", "--run-dir", run]
        t.cli(*argv, "--resume", "auto").error_line(str(first.pid), "being written by")
        assert files_of(run) == before
    finally:
        first.kill()
        first.wait()


@bad_input("lock-left-by-a-dead-process")
def _(t: Torture) -> None:
    """A ``.lock`` whose process is gone is taken over; the run trains and lets go."""
    run_dir = t.tmp / "run"
    run_dir.mkdir()
    (run_dir / ".lock").write_text(stale_lock())
    result = t.train_digits(run_dir)
    assert result.code == 0, result.err
    assert "taken over" in result.err
    assert not (run_dir / ".lock").exists() and epochs_recorded(run_dir) == [1]


def killed_before_first_checkpoint(t: Torture) -> Path:
    """A run killed after epoch 1's record and before its checkpoint (and its lock)."""
    run = t.trained_run()
    shutil.rmtree(run / "checkpoints")
    shutil.rmtree(run / "eval")
    (run / ".lock").write_text(stale_lock())
    return run


@bad_input("restart-after-kill-before-first-checkpoint")
def _(t: Torture) -> None:
    """Killed after the epoch's record, before its checkpoint: the same command again is
    refused, and nothing is appended to the epoch records."""
    run = killed_before_first_checkpoint(t)
    before = files_of(run)
    t.train_digits(run).error_line("--resume")
    assert files_of(run) == before


@bad_input("resume-auto-after-kill-before-first-checkpoint")
def _(t: Torture) -> None:
    """``--resume auto`` (what a preempted job reruns) starts such a run again from
    scratch, with one record per epoch."""
    run = killed_before_first_checkpoint(t)
    result = t.cli(
        "train", "digits", *TINY, f"output_dir={t.tmp}", "--run-dir", run, "--resume", "auto"
    )
    assert result.code == 0, result.err
    assert epochs_recorded(run) == [1]


@bad_input("resume-truncates-metrics-to-the-checkpoint")
def _(t: Torture) -> None:
    """Killed after epoch 2's record but before its checkpoint: on --resume,
    metrics.jsonl holds epochs 1 and 2 exactly once."""
    from pixelwise.engine import trainer

    original = trainer.save_run_checkpoints
    calls = {"n": 0}

    def killed_in_epoch_two(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # the kill, after append_metrics
        return original(*args, **kwargs)

    t.monkeypatch.setattr(trainer, "save_run_checkpoints", killed_in_epoch_two)
    run_dir = t.tmp / "run"
    with pytest.raises(KeyboardInterrupt):
        t.train_digits(run_dir, "train.epochs=2")
    assert epochs_recorded(run_dir) == [1, 2]
    assert load_state(run_dir / "checkpoints" / "last.pt")["epoch"] == 1
    t.monkeypatch.setattr(trainer, "save_run_checkpoints", original)
    result = t.train_digits(run_dir, "train.epochs=2", resume=True)
    assert result.code == 0, result.err
    assert epochs_recorded(run_dir) == [1, 2]


@bad_input("resume-with-another-train-epochs")
def _(t: Torture) -> None:
    """Refused naming the key, unless --allow-config-changes."""
    run = t.trained_run()
    before = files_of(run)
    line = t.train_digits(run, "train.epochs=3", resume=True).error_line("train.epochs")
    assert "--allow-config-changes" in line
    assert files_of(run) == before
    allowed = t.train_digits(run, "train.epochs=3", "--allow-config-changes", resume=True)
    assert allowed.code == 0, allowed.err
    assert epochs_recorded(run) == [1, 2, 3]


# =========================================================================== divergence
@bad_input("weights-diverge-in-the-last-step-of-an-epoch")
def _(t: Torture) -> None:
    """The last optimiser step of epoch 2 writes inf into a weight while the loss looked
    fine: the NaN message, exit 2, and no checkpoint holds the non-finite weights."""
    from pixelwise.engine import trainer

    original = trainer.train_one_epoch

    def explodes_at_the_end_of_epoch_two(parts, loader, epoch, real=None, **kwargs):
        stats = original(parts, loader, epoch, real, **kwargs)
        if epoch == 1:
            with torch.no_grad():
                next(parts.model.parameters()).fill_(float("inf"))
        return stats

    t.monkeypatch.setattr(trainer, "train_one_epoch", explodes_at_the_end_of_epoch_two)
    run_dir = t.tmp / "run"
    t.train_digits(run_dir, "train.epochs=2").error_line("NaN or infinite", "epoch 2")
    for name in ("last", "best"):
        state = load_state(run_dir / "checkpoints" / f"{name}.pt")
        assert state["epoch"] == 1 and finite(state)
    assert not list((run_dir / "checkpoints").glob(".*.tmp"))


@bad_input("loss-diverges-with-a-huge-learning-rate")
def _(t: Torture) -> None:
    run_dir = t.tmp / "run"
    t.train_digits(run_dir, "optim.lr=1e12", "train.log_every=1").error_line(
        "loss became", "optim.lr"
    )
    checkpoints = list((run_dir / "checkpoints").glob("*.pt")) if run_dir.exists() else []
    assert all(finite(load_state(p)) for p in checkpoints)


# =========================================================================== evaluation
@bad_input("eval-uses-the-runs-own-test-split-name")
def _(t: Torture) -> None:
    """``data.test_split: testing`` on a dataset with a ``testing/`` folder: train and
    ``pixelwise eval RUN`` evaluate it without being told."""
    root = class_folders(t.tmp / "data" / "train", {"a": 6, "b": 6}).parent
    class_folders(root / "testing", {"a": 2, "b": 2}, seed=500)
    config = folder_config(t.tmp, root, test_split="testing", val_fraction=0.25)
    run_dir = t.tmp / "run"
    train = t.cli("train", config, "--run-dir", run_dir)
    assert train.code == 0, train.err
    assert "testing split (best.pt)" in train.out
    (run_dir / "eval" / "testing.json").unlink()
    result = t.cli("eval", run_dir)
    assert result.code == 0, result.err
    assert json.loads((run_dir / "eval" / "testing.json").read_text())["split"] == "testing"


@bad_input("val-split-is-the-test-split-final-evaluation-of-last")
def _(t: Torture) -> None:
    """``data.val_split: test`` (as ``cifar10_fast``): best.pt was chosen on the test
    figures, so the final evaluation is of last.pt, said once in a warning."""
    root = class_folders(t.tmp / "data" / "train", {"a": 6, "b": 6}).parent
    class_folders(root / "test", {"a": 3, "b": 3}, seed=500)
    config = folder_config(t.tmp, root, val_split="test", val_fraction=0.0, test_fraction=0.0)
    run_dir = t.tmp / "run"
    train = t.cli("train", config, "--run-dir", run_dir, "train.epochs=2")
    assert train.code == 0, train.err
    warning = [line for line in train.err.splitlines() if "best.pt was chosen" in line]
    assert len(warning) == 1 and "data.val_split is the test split 'test'" in warning[0]
    assert sorted(p.name for p in (run_dir / "eval").iterdir()) == ["test-last.json"]
    report = json.loads((run_dir / "eval" / "test-last.json").read_text())
    assert report["checkpoint"] == "checkpoints/last.pt" and report["epoch"] == 2
    assert RunDir(run_dir).headline_evaluation()[0] == "test-last"
    assert RunDir(run_dir).default_checkpoint() == "last"  # report, analyze, a teacher
    again = t.cli("eval", run_dir)  # `eval` defaults to the same checkpoint
    assert again.code == 0 and "test-last.json" in again.out
    assert sorted(p.name for p in (run_dir / "eval").iterdir()) == ["test-last.json"]
    assert (run_dir / "checkpoints" / "best.pt").is_file()  # still there for those who ask


@bad_input("test-split-absent-no-silent-fallback")
def _(t: Torture) -> None:
    """No test split: the warning names the split evaluated instead; ``eval`` of the
    absent split is refused naming the splits there are."""
    root = class_folders(t.tmp / "data", {"a": 6, "b": 6})
    config = folder_config(t.tmp, root, val_fraction=0.25, test_fraction=0.0)
    run_dir = t.tmp / "run"
    train = t.cli("train", config, "--run-dir", run_dir)
    assert train.code == 0, train.err
    warning = [line for line in train.err.splitlines() if "no 'test' split" in line]
    assert len(warning) == 1 and "'val'" in warning[0] and "not a held-out" in warning[0]
    assert (run_dir / "eval" / "val.json").is_file()
    t.cli("eval", run_dir).error_line("'test'", "train, val", "--split")


@bad_input("neither-test-nor-val-split-trains-and-says-so")
def _(t: Torture) -> None:
    """No test and no validation split (``train.best_metric=train/loss``): training
    succeeds, and the final evaluation says in one warning that there was nothing to
    evaluate on, instead of failing after the training."""
    root = class_folders(t.tmp / "data", {"a": 6, "b": 6})
    config = write_config(
        t.tmp,
        {"format": "image_folder", "root": str(root), "val_fraction": 0.0, "test_fraction": 0.0},
        train={
            "epochs": 1,
            "tensorboard": False,
            "report": False,
            "learning_gif": False,
            "best_metric": "train/loss",
            "best_mode": "min",
        },
    )
    run_dir = t.tmp / "run"
    train = t.cli("train", config, "--run-dir", run_dir)
    assert train.code == 0, train.err
    warning = [line for line in train.err.splitlines() if "not evaluated" in line]
    assert len(warning) == 1 and "neither a 'test' nor a 'val' split" in warning[0]
    assert (run_dir / "checkpoints" / "best.pt").is_file()
    assert not (run_dir / "eval").exists()


@bad_input("test-evaluation-bug-is-not-hidden-by-a-fallback")
def _(t: Torture) -> None:
    """Any other failure of the test evaluation surfaces: no evaluation of val instead."""
    from pixelwise import experiment

    def broken(*args, **kwargs):
        raise ValueError("a bug in the evaluation")

    t.monkeypatch.setattr(experiment, "evaluate_run", broken)
    with pytest.raises(ValueError, match="a bug in the evaluation"):
        t.train_digits(t.tmp / "run")
    assert not (t.tmp / "run" / "eval").exists()


# =========================================================================== nothing lost
# Two epochs, each better than the one before: epoch 2 writes best.pt again.
BEST_EVERY_EPOCH = ["train.epochs=2", "train.best_metric=train/loss", "train.best_mode=min"]
KILL_WHILE_WRITING_BEST = """
import os, signal, sys
from pathlib import Path
import pixelwise.checkpoint as checkpoint
from pixelwise.cli import main

original = checkpoint.save_checkpoint
writes = []

def save(state, path):
    writes.append(Path(path).name)
    if Path(path).name == "best.pt" and state["epoch"] == 2:
        tmp = Path(path).parent / ".best.pt.killed.tmp"
        tmp.write_bytes(b"half a checkpoint")  # what a kill mid-write leaves
        os.kill(os.getpid(), signal.SIGKILL)
    original(state, path)

checkpoint.save_checkpoint = save
import pixelwise.engine.trainer as trainer
trainer.save_checkpoint = save
sys.exit(main(sys.argv[1:]))
"""


@bad_input("kill-while-best-pt-is-written")
def _(t: Torture) -> None:
    """SIGKILL while epoch 2's best.pt is written: the previous best.pt is complete,
    the orphaned .tmp and the stale lock go on restart, and the resumed run finishes
    with its test evaluation."""
    run_dir = t.tmp / "run"
    args = ["train", "digits", *TINY, f"output_dir={t.tmp}", *BEST_EVERY_EPOCH]
    killed = t.subprocess("-c", KILL_WHILE_WRITING_BEST, *args, "--run-dir", run_dir)
    assert killed.code == -signal.SIGKILL, killed.err
    best = run_dir / "checkpoints" / "best.pt"
    assert load_state(best)["epoch"] == 1  # complete, readable
    orphan = run_dir / "checkpoints" / ".best.pt.killed.tmp"
    assert (run_dir / ".lock").exists() and orphan.exists()
    result = t.cli(*args, "--run-dir", run_dir, "--resume")
    assert result.code == 0, result.err
    assert not list((run_dir / "checkpoints").glob(".*.tmp"))
    assert not (run_dir / ".lock").exists()
    assert epochs_recorded(run_dir) == [1, 2]
    assert json.loads((run_dir / "eval" / "test.json").read_text())["split"] == "test"
    assert "test split (best.pt)" in result.out


@bad_input("exception-while-best-pt-is-written")
def _(t: Torture) -> None:
    """An exception half way through writing best.pt (after its temporary file was
    written) leaves the previous best.pt and no temporary file."""
    import pixelwise.checkpoint as checkpoint

    real_replace = os.replace

    def fails_for_best(src, dst):
        if Path(dst).name == "best.pt" and Path(dst).exists():
            raise OSError(errno.EIO, "Input/output error")
        return real_replace(src, dst)

    t.monkeypatch.setattr(checkpoint.os, "replace", fails_for_best)
    run_dir = t.tmp / "run"
    line = t.train_digits(run_dir, *BEST_EVERY_EPOCH).error_line("best.pt")
    assert "input/output error" in line and "intact" in line
    assert load_state(run_dir / "checkpoints" / "best.pt")["epoch"] == 1
    assert not list((run_dir / "checkpoints").glob(".*.tmp"))


def dev_full_mkstemp(after: int):
    """``tempfile.mkstemp`` whose files after the first ``after`` write to /dev/full."""
    import tempfile

    real = tempfile.mkstemp
    calls = {"n": 0}

    def mkstemp(*args, **kwargs):
        calls["n"] += 1
        fd, name = real(*args, **kwargs)
        if calls["n"] > after:
            os.dup2(os.open("/dev/full", os.O_WRONLY), fd)
        return fd, name

    return mkstemp


@bad_input("disk-full-while-writing-a-checkpoint")
def _(t: Torture) -> None:
    """ENOSPC from the disk itself (/dev/full) in epoch 2: one line naming the path and
    'no space left on device'; epoch 1's checkpoints intact."""
    import pixelwise.checkpoint as checkpoint

    t.monkeypatch.setattr(checkpoint.tempfile, "mkstemp", dev_full_mkstemp(after=2))
    run_dir = t.tmp / "run"
    t.train_digits(run_dir, "train.epochs=2").error_line(
        str(run_dir / "checkpoints"), "no space left on device"
    )
    for name in ("best", "last"):
        assert load_state(run_dir / "checkpoints" / f"{name}.pt")["epoch"] == 1
    assert not list((run_dir / "checkpoints").glob(".*.tmp"))


@bad_input("disk-full-while-writing-metrics")
def _(t: Torture) -> None:
    from pixelwise.run import RunDir

    def no_space(self, record):
        with self.writing(self.metrics_file):
            raise OSError(errno.ENOSPC, "No space left on device")

    t.monkeypatch.setattr(RunDir, "append_metrics", no_space)
    run_dir = t.tmp / "run"
    t.train_digits(run_dir).error_line(str(run_dir / "metrics.jsonl"), "no space left on device")


@bad_input("read-only-output-location")
def _(t: Torture) -> None:
    """output_dir where nothing can be written: one line naming the path and why."""
    if os.geteuid() == 0:  # root writes through chmod: a folder under a file cannot exist
        blocker = t.tmp / "a-file"
        blocker.write_text("")
        output, reason = blocker / "runs", f"{blocker} is a file, not a folder"
    else:
        output = t.tmp / "read-only"
        output.mkdir()
        output.chmod(0o555)
        reason = "permission denied"
    result = t.cli("train", "digits", *TINY, f"output_dir={output}")
    result.error_line(str(output), reason)


@bad_input("read-only-checkpoint-folder")
def _(t: Torture) -> None:
    """The file system turns read-only in epoch 2 (EROFS): one line, epoch 1 kept."""
    import pixelwise.checkpoint as checkpoint

    real = checkpoint.tempfile.mkstemp
    calls = {"n": 0}

    def mkstemp(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 2:
            raise OSError(errno.EROFS, "Read-only file system")
        return real(*args, **kwargs)

    t.monkeypatch.setattr(checkpoint.tempfile, "mkstemp", mkstemp)
    run_dir = t.tmp / "run"
    t.train_digits(run_dir, "train.epochs=2").error_line(
        str(run_dir / "checkpoints"), "read-only file system"
    )
    assert load_state(run_dir / "checkpoints" / "last.pt")["epoch"] == 1


@bad_input("outputs-of-data-and-predict-cannot-be-written")
def _(t: Torture) -> None:
    """``data stats --out``, ``data check --json`` and ``predict --out`` under a file:
    one line naming the path, nothing half written."""
    blocker = t.tmp / "a-file"
    blocker.write_text("")
    reason = f"{blocker} is a file, not a folder"
    t.cli("data", "stats", "digits", "--out", blocker / "s.json").error_line(reason)
    check = t.cli("data", "check", "digits", "--limit", "20", "--json", blocker / "c.json")
    check.error_line(str(blocker / "c.json"), reason)
    run = t.trained_run()
    image = save_image(t.tmp / "x.png", pixels(8, 8, 0, 1))
    t.cli("predict", run, image, "--out", blocker / "out").error_line(reason, alone=True)


@bad_input("eval-when-its-picture-cannot-be-written")
def _(t: Torture) -> None:
    run = t.trained_run()
    shutil.rmtree(run / "plots")
    (run / "plots").write_text("")
    t.cli("eval", run).error_line(str(run / "plots"), "is a file, not a folder")


# =========================================================================== weights files
def weight_files(tmp: Path) -> dict[str, tuple[Path, str]]:
    """Bad weights files and a fragment of the line that must name each."""
    marker = tmp / "payload_ran"
    malicious = tmp / "malicious.pt"
    malicious.write_bytes(pickle.dumps({"model": Payload(f"touch {marker}")}, protocol=2))
    good = tmp / "good.pt"
    torch.save({"weight": torch.zeros(2, 2)}, good)
    truncated = tmp / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    empty = tmp / "empty.pt"
    empty.write_bytes(b"")
    return {
        "malicious": (malicious, "would call posix.system"),
        "truncated": (truncated, "truncated"),
        "empty": (empty, "empty"),
    }


def _weights_case(kind: str, key: str):
    def case(t: Torture) -> None:
        path, fragment = weight_files(t.tmp)[kind]
        if key == "model.weights":
            command = ["train", "digits", *TINY, f"model.weights={path}"]
        else:
            config = write_config(
                t.tmp,
                {"format": "digits_segmentation", "num_samples": 16, "in_channels": 1},
                task="segmentation",
                model={"name": "unet", "encoder": "resnet20", "encoder_weights": str(path)},
            )
            command = ["train", str(config)]
        t.cli(*command, "--run-dir", t.tmp / "run").error_line(str(path), fragment, alone=True)
        assert not (t.tmp / "payload_ran").exists()
        assert not (t.tmp / "run").exists()

    return case


for _kind in ("malicious", "truncated", "empty"):
    for _key in ("model.weights", "model.encoder_weights"):
        bad_input(f"{_kind}-{_key.replace('.', '-').replace('_', '-')}")(_weights_case(_kind, _key))


@bad_input("torchvision-weights-without-network")
def _(t: Torture) -> None:
    """One line naming the local cache, TORCH_HOME and where to put the file; no download
    is attempted."""
    import torch.hub

    def no_network(*args, **kwargs):
        raise AssertionError("a download was attempted")

    t.monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    home = t.tmp / "torch-home"
    home.mkdir()
    t.monkeypatch.setenv("TORCH_HOME", str(home))
    command = ["train", "digits", *TINY, "model.name=resnet18", "model.options={}"]
    command += ["model.weights=torchvision"]
    line = t.cli(*command, "--run-dir", t.tmp / "run").error_line("TORCH_HOME", str(home))
    assert "cache" in line and "checkpoints" in line


# =========================================================================== checkpoints
@bad_input("eval-with-a-truncated-best-pt")
def _(t: Torture) -> None:
    run = t.trained_run()
    best = run / "checkpoints" / "best.pt"
    best.write_bytes(best.read_bytes()[:1000])
    t.cli("eval", run).error_line(str(best), "truncated", alone=True)


@bad_input("predict-with-a-malicious-checkpoint")
def _(t: Torture) -> None:
    """Pickle protocol 4 (Python's default), which torch's reader cannot even parse:
    refused in one line all the same, with no warning about protocols."""
    marker = t.tmp / "payload_ran"
    checkpoint = t.tmp / "model.pt"
    checkpoint.write_bytes(pickle.dumps({"model": Payload(f"touch {marker}")}, protocol=4))
    image = save_image(t.tmp / "x.png", pixels(8, 8, 0, 1))
    t.cli("predict", checkpoint, image, "--out", t.tmp / "out").error_line(
        str(checkpoint), "refused to load", "nothing in it was run", alone=True
    )
    assert not marker.exists() and not (t.tmp / "out").exists()


@bad_input("eval-with-a-malicious-best-pt")
def _(t: Torture) -> None:
    run = t.trained_run()
    marker = t.tmp / "payload_ran"
    best = run / "checkpoints" / "best.pt"
    best.write_bytes(pickle.dumps({"model": Payload(f"touch {marker}")}, protocol=2))
    t.cli("eval", run).error_line(str(best), "would call posix.system", alone=True)
    assert not marker.exists()


@bad_input("eval-of-a-run-without-checkpoints")
def _(t: Torture) -> None:
    run = t.trained_run()
    shutil.rmtree(run / "checkpoints")
    t.cli("eval", run).error_line(str(run), "no checkpoints/best.pt")


# =========================================================================== error kinds
@bad_input("a-bug-keeps-its-traceback")
def _(t: Torture) -> None:
    """A plain ValueError from the code is a bug: ``main`` lets it through, so Python
    prints its traceback and exits with status 1; nothing is printed as a user error."""
    import pixelwise.config

    def bug(*args, **kwargs):
        raise ValueError("a bug, not a user mistake")

    t.monkeypatch.setattr(pixelwise.config, "load_config", bug)
    with pytest.raises(ValueError, match="a bug, not a user mistake") as caught:
        t.cli("train", "digits")
    assert type(caught.value) is ValueError and caught.value.__traceback__ is not None
    assert ": error: " not in t.capsys.readouterr().err


@bad_input("a-user-error-is-one-line-and-debug-shows-its-traceback")
def _(t: Torture) -> None:
    t.cli("train", "digits", "optim.lrr=0.1").error_line("optim.lrr", "optim.lr")
    t.monkeypatch.setenv("PIXELWISE_DEBUG", "1")
    result = t.cli("train", "digits", "optim.lrr=0.1")
    assert result.code == 2
    assert "Traceback" in result.err and "ConfigError" in result.err
    assert result.err.strip().splitlines()[-1].startswith("pixelwise train: error: ")


# --------------------------------------------------------------------------- the table
@pytest.mark.torture
@pytest.mark.parametrize("case", [case.param() for case in BAD_INPUTS])
def test_bad_input_is_handled(case: BadInput, torture: Torture) -> None:
    case.run(torture)
