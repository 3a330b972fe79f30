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
from typing import Any, Literal

import torch
from torch import nn

from ..errors import UserError


class ModelError(UserError):
    """An unknown model name, a bad option, or weights that do not fit."""


def split_output(output: Any) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """``(logits, auxiliary logits)`` of any model's output: the one decoder of the
    output convention.

    A model returns a logits tensor; or, in training mode, ``{"out": logits, "aux":
    aux_logits or a list of them}`` (torchvision's segmentation models); or a tuple
    ``(logits, aux, ...)`` (torchvision's GoogLeNet/Inception in training mode).
    """
    if isinstance(output, torch.Tensor):
        return output, []
    if isinstance(output, dict):
        if "out" not in output:
            raise ModelError(
                f"a model returned a dict with keys {sorted(output)}; the logits must be "
                "under 'out' (and auxiliary logits under 'aux')"
            )
        aux = output.get("aux")
        if aux is None:
            return output["out"], []
        return output["out"], list(aux) if isinstance(aux, (list, tuple)) else [aux]
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0], [o for o in output[1:] if isinstance(o, torch.Tensor)]
    raise ModelError(
        f"a model returned a {type(output).__name__}; expected logits (a tensor), "
        "{'out': logits, 'aux': ...} or a tuple (logits, aux, ...)"
    )


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
