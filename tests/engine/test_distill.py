"""Knowledge distillation: teacher from a run, the mixed loss, clear mismatch errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pixelwise.checkpoint import CheckpointError
from pixelwise.config import DistillConfig
from pixelwise.engine import fit
from pixelwise.engine.distill import Distillation, load_teacher
from pixelwise.losses import distillation_loss


def test_the_mix_of_hard_and_soft_losses():
    teacher = nn.Linear(3, 4)
    images, targets = torch.randn(5, 3), torch.randint(0, 4, (5,))
    logits = torch.randn(5, 4)
    hard = torch.tensor(2.0)
    only_hard = Distillation(teacher, DistillConfig(alpha=0.0, temperature=3.0), 255)
    assert only_hard(hard, logits, images, targets) == hard
    only_soft = Distillation(teacher, DistillConfig(alpha=1.0, temperature=3.0), 255)
    expected = distillation_loss(logits, teacher(images).detach(), targets, 3.0)
    assert torch.allclose(only_soft(hard, logits, images, targets), expected)


def test_student_learns_from_a_teacher_run(small_digits, tmp_path):
    teacher_run = fit(small_digits("train.epochs=1"), run_dir=tmp_path / "teacher")
    teacher = load_teacher(teacher_run.run_dir, 10, 1, torch.device("cpu"))
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    with pytest.raises(CheckpointError, match="predicts 10 classes, the student 5"):
        load_teacher(teacher_run.run_dir / "checkpoints" / "last.pt", 5, 1, torch.device("cpu"))
    with pytest.raises(FileNotFoundError, match="distill.teacher"):
        load_teacher(tmp_path / "nowhere", 10, 1, torch.device("cpu"))

    student = fit(
        small_digits(
            "train.epochs=1",
            f"distill.teacher={teacher_run.run_dir}",
            "distill.alpha=0.7",
            "model.options={width: 2, dropout: 0.0}",
        ),
        run_dir=tmp_path / "student",
    )
    assert student.history[0]["train/loss"] > 0 and "val/accuracy" in student.history[0]
