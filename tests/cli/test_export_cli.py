"""``pixelwise export``: writes the file and prints the verification's difference."""

from __future__ import annotations

import re

import onnxruntime as ort
import pytest
import torch

from pixelwise.card import ModelCard
from pixelwise.checkpoint import save_checkpoint
from pixelwise.cli import main
from pixelwise.config import load_config
from pixelwise.engine.build import build_model


@pytest.fixture
def run_dir(tmp_path):
    """A run directory holding checkpoints/best.pt of a small grayscale classifier."""
    cfg = load_config(
        None, ["data.in_channels=1", "data.image_size=[16, 16]", "model.options={width: 4}"]
    )
    torch.manual_seed(0)
    model = build_model(cfg, 10)
    card = ModelCard.from_config(cfg, [str(d) for d in range(10)]).to_dict()
    save_checkpoint(
        {"model": model.state_dict(), "card": card}, tmp_path / "checkpoints" / "best.pt"
    )
    return tmp_path


def reported_difference(out: str) -> float:
    found = re.search(r"max abs difference vs PyTorch: (\S+)", out)
    assert found, out
    return float(found.group(1))


@pytest.mark.slow
def test_onnx_export_of_a_run_directory(run_dir, capsys):
    assert main(["export", str(run_dir), "--format", "onnx"]) == 0
    out = capsys.readouterr().out
    assert f"wrote {run_dir / 'checkpoints' / 'best.onnx'}" in out
    assert "dynamic dimensions: batch" in out and "ONNX Runtime" in out
    assert reported_difference(out) < 1e-4
    session = ort.InferenceSession(str(run_dir / "checkpoints" / "best.onnx"))
    assert session.get_inputs()[0].shape == ["batch", 1, 16, 16]


def test_safetensors_export_with_out(run_dir, tmp_path, capsys):
    target = tmp_path / "exports" / "digits.safetensors"
    assert main(["export", str(run_dir), "--format", "safetensors", "--out", str(target)]) == 0
    out = capsys.readouterr().out
    assert target.is_file() and reported_difference(out) == 0.0


def test_export_of_nothing_is_one_line_with_status_2(tmp_path, capsys):
    assert main(["export", str(tmp_path / "missing"), "--format", "onnx"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_checkpoint_last_exports_last_pt_beside_it(run_dir, capsys):
    checkpoints = run_dir / "checkpoints"
    (checkpoints / "last.pt").write_bytes((checkpoints / "best.pt").read_bytes())
    assert main(["export", str(run_dir), "--format", "safetensors", "--checkpoint", "last"]) == 0
    assert f"wrote {checkpoints / 'last.safetensors'}" in capsys.readouterr().out
    assert not (checkpoints / "best.safetensors").exists()
