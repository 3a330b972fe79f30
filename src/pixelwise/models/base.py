"""The interface every pixelwise model shares.

Classifiers follow timm's split: ``forward_features`` gives the last feature map,
``forward_head`` pools and classifies, ``reset_classifier`` swaps the last layer for
a new class count. ``feature_info`` names the multi-scale levels (channels and
stride) that ``forward_pyramid`` returns, which is what lets any classifier serve as
a segmentation encoder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn


@dataclass(frozen=True)
class FeatureLevel:
    """One level of a classifier's feature pyramid."""

    name: str  # submodule whose output this is, for reading
    channels: int
    stride: int  # input pixels per output pixel


class Classifier(nn.Module):
    """Base for classifiers: subclasses define the three methods and ``feature_info``."""

    feature_info: list[FeatureLevel]
    num_classes: int

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        raise NotImplementedError

    def forward_pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps at every level of ``feature_info``, shallow to deep."""
        raise NotImplementedError

    def reset_classifier(self, num_classes: int) -> None:
        raise NotImplementedError

    def classifier_module_names(self) -> list[str]:
        """Names of the parameters' modules that form the head (replaced for new classes)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


Task = Literal["classification", "segmentation"]


@dataclass(frozen=True)
class ModelSpec:
    """What the registry knows about a model name: how to build it and what it expects."""

    builder: Callable[..., nn.Module]
    task: Task
    input_size: tuple[int, int, int] = (3, 224, 224)
    description: str = ""
    defaults: dict = field(default_factory=dict)
