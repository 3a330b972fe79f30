"""RunDir: paths, metrics, evaluation names, the lock and the never-overwrite rule."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from pixelwise.run import (
    RunDir,
    RunDirError,
    RunNotFoundError,
    decide_resume,
    new_run_dir,
    open_for_training,
)


def test_new_run_dir_never_reuses_a_name(tmp_path):
    first = new_run_dir(tmp_path / "runs", "exp")
    second = new_run_dir(tmp_path / "runs", "exp")
    third = new_run_dir(tmp_path / "runs", "exp")
    assert [p.name for p in (first, second, third)] == ["exp", "exp-2", "exp-3"]
    assert all(p.is_dir() for p in (first, second, third))


def test_a_run_dir_or_a_checkpoint_inside_it(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "config.yaml").write_text("task: classification\n")
    checkpoint = tmp_path / "checkpoints" / "last.pt"
    checkpoint.write_bytes(b"x")
    run = RunDir(checkpoint)
    assert run.path == tmp_path and run.find_checkpoint("best") == checkpoint
    with pytest.raises(RunNotFoundError, match="has no checkpoints/best.pt .it has last.pt"):
        RunDir(tmp_path).find_checkpoint("best")
    with pytest.raises(FileNotFoundError, match="no run directory or checkpoint"):
        RunDir(tmp_path / "nowhere")
    stray = tmp_path / "elsewhere" / "model.pt"
    stray.parent.mkdir()
    stray.write_bytes(b"x")
    with pytest.raises(RunDirError, match="no config.yaml beside it"):
        RunDir(stray)


def test_metrics_are_strict_json_and_truncate_to_a_checkpoint(tmp_path):
    run = RunDir(tmp_path)
    for epoch in (1, 2, 3):
        run.append_metrics({"epoch": epoch, "val/miou": math.nan if epoch == 2 else 0.5})
    text = run.metrics_file.read_text()
    assert "NaN" not in text and json.loads(text.splitlines()[1])["val/miou"] is None
    assert math.isnan(run.metrics()[1]["val/miou"])  # read back as undefined
    kept = run.truncate_metrics(2)
    assert [r["epoch"] for r in kept] == [1, 2] == [r["epoch"] for r in run.metrics()]


def test_every_evaluation_has_its_own_file(tmp_path):
    run = RunDir(tmp_path)
    names = {
        run.eval_file("test").name,
        run.eval_file("test", "last").name,
        run.eval_file("test", tta=True).name,
        run.eval_file("test", "ema", tta=True, sliding=True).name,
        run.eval_file("val").name,
    }
    assert names == {
        "test.json",
        "test-last.json",
        "test-tta.json",
        "test-ema-tta-sliding.json",
        "val.json",
    }


def test_an_existing_run_is_never_reused_without_resume(tmp_path):
    path = tmp_path / "run"
    path.mkdir()
    (path / "config.yaml").write_text("old: run\n")
    with pytest.raises(RunDirError, match="already holds files .config.yaml.*--resume"):
        open_for_training("runs", "x", path, resume=False)
    assert (path / "config.yaml").read_text() == "old: run\n"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert open_for_training("runs", "x", empty, resume=False).path == empty
    fresh = open_for_training(str(tmp_path / "runs"), "x", None, resume=False)
    assert fresh.path == tmp_path / "runs" / "x"


def test_the_lock_refuses_a_second_writer_and_takes_over_a_dead_ones(tmp_path):
    run = RunDir(tmp_path)
    with run.lock():
        holder = json.loads(run.lock_file.read_text())
        assert holder["pid"] == os.getpid()
        second = RunDir(tmp_path).lock()
        with pytest.raises(RunDirError, match=rf"being written by process {os.getpid()} on"):
            second.__enter__()
    assert not run.lock_file.exists()
    # A process that died holding the lock: its pid no longer exists.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], text=True,
                          capture_output=True, check=True).stdout.strip()  # fmt: skip
    run.lock_file.write_text(json.dumps({"pid": int(dead), "host": os.uname().nodename}))
    with run.lock():
        assert json.loads(run.lock_file.read_text())["pid"] == os.getpid()


def test_resume_auto_starts_afresh_only_without_a_checkpoint(tmp_path):
    assert decide_resume(tmp_path, None) is False
    with pytest.raises(RunDirError, match="--resume needs --run-dir"):
        decide_resume(None, True)
    with pytest.raises(FileNotFoundError, match="last.pt not found"):
        decide_resume(tmp_path, True)
    (tmp_path / "config.yaml").write_text("task: classification\n")
    (tmp_path / "metrics.jsonl").write_text('{"epoch": 1}\n')
    (tmp_path / "notes.txt").write_text("mine")
    assert decide_resume(tmp_path, "auto") is False
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # only the run's files
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.pt").write_bytes(b"x")
    assert decide_resume(tmp_path, "auto") is True


def test_a_killed_writers_temporary_files_are_removed(tmp_path):
    run = RunDir(tmp_path)
    run.checkpoints_dir.mkdir()
    (run.checkpoints_dir / ".best.pt.abc.tmp").write_bytes(b"half")
    (run.checkpoints_dir / "best.pt").write_bytes(b"whole")
    assert [p.name for p in run.remove_temporary_files()] == [".best.pt.abc.tmp"]
    assert [p.name for p in run.checkpoints_dir.iterdir()] == ["best.pt"]


def test_a_write_error_is_one_line_naming_the_path(tmp_path):
    run = RunDir(tmp_path)
    run.metrics_file.mkdir()  # writing a file where a folder stands fails, even as root
    with pytest.raises(RunDirError, match=r"cannot write .*metrics.jsonl: is a directory"):
        run.append_metrics({"epoch": 1})
