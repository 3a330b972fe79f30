"""Evaluation: one pass over a split into one confusion matrix."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..log import progress
from ..metrics import ConfusionMatrix


def main_output(output: torch.Tensor | dict | tuple) -> torch.Tensor:
    """The logits of a model's output: a tensor, or ``{"out": ..., "aux": ...}``."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, dict):
        return output["out"]
    return output[0]


def auxiliary_outputs(output: torch.Tensor | dict | tuple) -> list[torch.Tensor]:
    """Auxiliary-head logits, where a model returns them in training mode."""
    if isinstance(output, dict):
        aux = output.get("aux")
        if aux is None:
            return []
        return list(aux) if isinstance(aux, (list, tuple)) else [aux]
    if isinstance(output, tuple):
        return [o for o in output[1:] if isinstance(o, torch.Tensor)]
    return []


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    num_classes: int,
    device: torch.device,
    ignore_index: int = 255,
    loss_fn: nn.Module | None = None,
    predict: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None,
    topk: int = 5,
    desc: str = "eval",
) -> tuple[float, ConfusionMatrix]:
    """Mean loss per batch element and the split's confusion matrix.

    ``predict(model, images) -> logits`` replaces a plain forward pass (test-time
    augmentation, sliding windows).
    """
    was_training = model.training
    model.eval()
    matrix = ConfusionMatrix(num_classes, ignore_index=ignore_index, topk=topk)
    loss_sum = torch.zeros((), dtype=torch.float64)
    count = 0
    for images, targets in progress(loader, desc=desc):
        images = images.to(device, non_blocking=True)
        targets = targets.to(device, non_blocking=True)
        logits = predict(model, images) if predict else main_output(model(images))
        if loss_fn is not None:
            loss_sum += float(loss_fn(logits.float(), targets)) * images.shape[0]
        count += images.shape[0]
        matrix.update(logits, targets)
    model.train(was_training)
    return (float(loss_sum) / max(count, 1)), matrix
