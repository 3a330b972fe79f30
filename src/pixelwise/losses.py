"""Losses for (N, C) or (N, C, H, W) logits with (N,) or (N, H, W) targets.

Every loss honours ``ignore_index``. ``build_loss`` sums the configured terms with
their weights (for example cross-entropy + Dice).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .config import LossConfig


class CrossEntropy(nn.Module):
    def __init__(
        self,
        weight: torch.Tensor | None = None,
        label_smoothing: float = 0.0,
        ignore_index: int = 255,
    ):
        super().__init__()
        self.register_buffer("weight", weight)
        self.label_smoothing = label_smoothing
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(
            logits,
            target,
            weight=self.weight,
            ignore_index=self.ignore_index,
            label_smoothing=self.label_smoothing,
        )


class WeightedSum(nn.Module):
    """``sum_i w_i * loss_i``: the combination of configured terms."""

    def __init__(self, losses: Sequence[nn.Module], weights: Sequence[float]):
        super().__init__()
        self.losses = nn.ModuleList(losses)
        self.weights = list(weights)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        total = logits.new_zeros(())
        for weight, loss in zip(self.weights, self.losses):
            total = total + weight * loss(logits, target)
        return total


def build_loss(
    cfg: LossConfig,
    num_classes: int,
    ignore_index: int = 255,
    class_weights: torch.Tensor | None = None,
) -> nn.Module:
    terms, weights = [], []
    for term in cfg.terms:
        if term.name == "cross_entropy":
            terms.append(CrossEntropy(class_weights, cfg.label_smoothing, ignore_index))
        else:
            raise ValueError(f"loss term {term.name!r} is not available yet")
        weights.append(term.weight)
    return terms[0] if len(terms) == 1 and weights[0] == 1.0 else WeightedSum(terms, weights)
