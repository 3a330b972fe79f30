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
from ..models import create_model
from .checkpoint import CheckpointError, check_compatible, load_checkpoint


def teacher_checkpoint(path: str | Path) -> Path:
    """A run directory -> its ``checkpoints/best.pt``; a file is taken as it is."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoints" / "best.pt"
    if not path.is_file():
        raise FileNotFoundError(
            f"distill.teacher: no checkpoint at {path} (give a run directory or a .pt file)"
        )
    return path


def load_teacher(
    path: str | Path, num_classes: int, in_channels: int, device: torch.device
) -> nn.Module:
    """The teacher in eval mode, frozen, on ``device``; loaded with ``weights_only=True``."""
    ckpt = teacher_checkpoint(path)
    state = load_checkpoint(ckpt)
    card = state.get("card")
    if not card or "model" not in card:
        raise CheckpointError(f"distill.teacher: {ckpt} has no model card to build the teacher")
    if card["num_classes"] != num_classes:
        raise CheckpointError(
            f"distill.teacher: {ckpt} predicts {card['num_classes']} classes, "
            f"the student {num_classes}"
        )
    if card.get("in_channels", in_channels) != in_channels:
        raise CheckpointError(
            f"distill.teacher: {ckpt} takes {card['in_channels']} input channels, "
            f"the student {in_channels}"
        )
    options = dict(card.get("model_options") or {})
    teacher = create_model(
        card["model"], num_classes=num_classes, in_channels=in_channels, **options
    )
    check_compatible(teacher, state["model"], f"distill.teacher {ckpt}")
    teacher.load_state_dict(state["model"])
    teacher.eval().requires_grad_(False)
    return teacher.to(device)


class Distillation:
    """Mixes the hard-label loss with the teacher's soft targets."""

    def __init__(self, teacher: nn.Module, cfg: DistillConfig, ignore_index: int) -> None:
        self.teacher = teacher
        self.temperature = cfg.temperature
        self.alpha = cfg.alpha
        self.ignore_index = ignore_index

    @torch.no_grad()
    def teacher_logits(self, images: torch.Tensor, size: torch.Size) -> torch.Tensor:
        output = self.teacher(images)
        logits = output["out"] if isinstance(output, dict) else output
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
