from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pixelwise.cli import COMMANDS, build_parser, main

SUBCOMMANDS = ["train", "eval", "predict", "analyze", "export", "models", "data", "demo", "report"]


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
