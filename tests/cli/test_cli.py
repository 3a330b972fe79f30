from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from pixelwise.cli import COMMANDS, build_parser, main, parse_args
from pixelwise.config import load_config

SUBCOMMANDS = [
    "train",
    "eval",
    "predict",
    "analyze",
    "export",
    "models",
    "data",
    "demo",
    "report",
    "tune",
]


def test_top_level_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name in SUBCOMMANDS:
        assert name in out


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_each_subcommand_has_help(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == 0
    assert "usage: pixelwise" in capsys.readouterr().out


def test_parser_knows_all_commands():
    assert len(COMMANDS) == len(SUBCOMMANDS)
    build_parser()


@pytest.mark.parametrize(
    "command",
    [[str(Path(sys.executable).parent / "pixelwise")], [sys.executable, "-m", "pixelwise"]],
)
def test_console_script_and_module_run(command):
    result = subprocess.run([*command, "--version"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "pixelwise" in result.stdout


def test_bad_config_key_is_one_line_with_status_2(capsys, tmp_path):
    code = main(["train", "digits", "optim.lrr=0.1", f"output_dir={tmp_path}"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "optim.lrr" in err and "did you mean optim.lr" in err
    assert not any(tmp_path.iterdir())  # rejected before any work


def test_models_lists_with_params(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "small_cnn" in out and "classification" in out


# --------------------------------------------------------------------------- train flags
@pytest.fixture
def calls(monkeypatch):
    """``pixelwise train`` up to the engine: the arguments ``run_experiment`` receives."""
    import pixelwise.engine

    received = []

    def fake_run_experiment(cfg, run_dir=None, resume=False, allow_config_changes=False):
        received.append({"cfg": cfg, "run_dir": run_dir, "resume": resume})
        return SimpleNamespace(is_main=False), None

    monkeypatch.setattr(pixelwise.experiment, "run_experiment", fake_run_experiment)
    return received


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "digits", "-q", "--print-config"],
        ["train", "-q", "digits", "--print-config"],
        ["-q", "train", "digits", "--print-config"],
        ["train", "digits", "--quiet", "--print-config"],
    ],
)
def test_global_flags_anywhere(argv, capsys):
    assert parse_args(argv).quiet is True
    assert main(argv) == 0
    assert parse_args(["train", "digits"]).quiet is False
    assert parse_args(["data", "check", "digits", "-q"]).quiet is True


def test_print_config_prints_the_resolved_config_and_exits(capsys, tmp_path, calls):
    argv = ["train", "camvid_unet", "optim.lr=3e-4", f"output_dir={tmp_path}", "--print-config"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    path = tmp_path / "printed.yaml"
    path.write_text(printed)
    assert load_config(path) == load_config(
        "camvid_unet", ["optim.lr=3e-4", f"output_dir={tmp_path}"]
    )
    assert "base:" not in printed and "image_size: [240, 320]" in printed
    assert calls == [] and list(tmp_path.iterdir()) == [path]  # nothing trained or written


def test_overrides_after_options_are_overrides(calls, tmp_path):
    argv = ["train", "digits", "train.epochs=2", "--run-dir", str(tmp_path / "r"), "optim.lr=1e-3"]
    assert main(argv) == 0
    cfg = calls[0]["cfg"]
    assert (cfg.train.epochs, cfg.optim.lr) == (2, 1e-3)
    with pytest.raises(SystemExit):
        main(["train", "digits", "--run-dir", "r", "stray"])


@pytest.mark.parametrize(
    "spelling",
    [["--resume", "auto"], ["resume=auto"]],  # resume=auto: the old spelling, deprecated
)
def test_resume_auto_starts_fresh_then_resumes(calls, tmp_path, spelling, capsys):
    run_dir = tmp_path / "run"
    assert main(["train", "digits", "--run-dir", str(run_dir), *spelling]) == 0
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.pt").write_bytes(b"")
    assert main(["train", "digits", "--run-dir", str(run_dir), *spelling]) == 0
    assert [c["resume"] for c in calls] == [False, True]
    assert all(c["run_dir"] == run_dir for c in calls)


def test_plain_resume_needs_a_last_checkpoint(calls, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["train", "digits", "--run-dir", str(run_dir), "--resume"]) == 2
    assert "last.pt not found" in capsys.readouterr().err
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.pt").write_bytes(b"")
    assert main(["train", "digits", "--resume", "--run-dir", str(run_dir)]) == 0
    assert calls[0]["resume"] is True
    assert main(["train", "digits", "--resume"]) == 2  # which run?
    assert "--resume needs --run-dir" in capsys.readouterr().err


def test_resume_swallowing_an_override_says_where_it_goes(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "digits", "--resume", "train.epochs=1"])
    assert exit_info.value.code == 2
    assert "write --resume (or --resume auto) after the config" in capsys.readouterr().err


def test_an_empty_config_file_is_refused_by_train(tmp_path, capsys, calls):
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing yet\n")
    assert main(["train", str(path)]) == 2
    assert f"{path}: the file is empty" in capsys.readouterr().err
    assert calls == []


def test_models_takes_a_pattern_and_a_task(capsys):
    assert main(["models", "resnet*"]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert rows and all(row.startswith("resnet") for row in rows)
    assert main(["models", "*unet*", "--task", "segmentation"]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert [row.split()[0] for row in rows] == ["unet", "unet_original"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["models", "resnet*", "--task", "segmentation"], "no model of task segmentation"),
        (["models", "segmentaton"], "did you mean task='segmentation'?"),
    ],
)
def test_models_says_when_nothing_matches(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


def test_dry_run_builds_data_and_model_and_trains_nothing(tmp_path, capsys, calls):
    argv = ["train", "digits", f"output_dir={tmp_path / 'runs'}", "data.batch_size=100"]
    assert main([*argv, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "data: train 1257, val 270, test 270 images; 10 classes" in out
    assert "model: small_cnn, 103.47K parameters, 4.79M MACs per 1x16x16 image" in out
    assert "steps per epoch: 12 batches of 100 (12 optimiser steps)" in out
    assert calls == [] and not (tmp_path / "runs").exists()  # nothing trained or written
