"""Knowledge distillation: a trained teacher's softened outputs teach the student.

``loss = (1 - alpha) * hard + alpha * T^2 * KL(softmax(t / T) || softmax(s / T))``
(Hinton et al., 2015), per sample for classification and per pixel for segmentation,
with ``alpha = distill.alpha`` and ``T = distill.temperature``. The teacher is a run
directory (its ``best`` checkpoint) or a checkpoint file; its architecture comes from
the checkpoint's model card, so no config is needed.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..config import DistillConfig
from ..losses import distillation_loss
from ..models.base import split_output
from ..run import RunDir, RunNotFoundError, model_from_state, read_model_file


def load_teacher(
    path: str | Path, num_classes: int, in_channels: int, device: torch.device
) -> nn.Module:
    """The teacher in eval mode, frozen, on ``device``: a run directory's own checkpoint
    (``RunDir.default_checkpoint``: the best) or a checkpoint file, opened as every
    reader opens a run (``weights_only``)."""
    path = Path(path)
    if (
        path.is_file()
        and not (path.parent / "config.yaml").is_file()
        and not (path.parent.parent / "config.yaml").is_file()
    ):
        card, state = read_model_file(path)  # a loose checkpoint: its card is enough
        teacher = model_from_state(card, state, f"distill.teacher {path}")
    else:
        if not path.exists():
            raise RunNotFoundError(
                f"distill.teacher: no run directory or checkpoint at {path} "
                "(give a run directory or a .pt file)"
            )
        run = RunDir(path)
        teacher, card = run.load_model(run.default_checkpoint())
    card.check_fits(
        f"distill.teacher {path}", card.model, num_classes, in_channels, role="the student"
    )
    return teacher.eval().requires_grad_(False).to(device)


class Distillation:
    """Mixes the hard-label loss with the teacher's soft targets."""

    def __init__(self, teacher: nn.Module, cfg: DistillConfig, ignore_index: int) -> None:
        self.teacher = teacher
        self.temperature = cfg.temperature
        self.alpha = cfg.alpha
        self.ignore_index = ignore_index

    @torch.no_grad()
    def teacher_logits(self, images: torch.Tensor, size: torch.Size) -> torch.Tensor:
        logits = split_output(self.teacher(images))[0]
        if logits.dim() == 4 and logits.shape[-2:] != size:
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        return logits

    def __call__(
        self,
        hard_loss: torch.Tensor,
        logits: torch.Tensor,
        images: torch.Tensor,
        targets: torch.Tensor,
    ) -> torch.Tensor:
        teacher = self.teacher_logits(images, logits.shape[-2:])
        soft = distillation_loss(logits, teacher, targets, self.temperature, self.ignore_index)
        return (1 - self.alpha) * hard_loss + self.alpha * soft
