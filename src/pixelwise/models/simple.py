"""A small CNN for small inputs (digits, 32x32 images): the quick-start model.

Three conv-BN-ReLU stages, each halving the resolution, then global pooling and a
linear classifier; about 0.1M parameters, enough for >97% on scikit-learn's digits.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import Classifier, FeatureLevel, ModelSpec
from .layers import ConvNormAct


class SmallCNN(Classifier):
    def __init__(
        self, num_classes: int = 10, in_channels: int = 3, width: int = 32, dropout: float = 0.1
    ) -> None:
        super().__init__()
        widths = [width, width * 2, width * 4]
        self.stem = ConvNormAct(in_channels, widths[0])
        self.stages = nn.ModuleList(
            [
                nn.Sequential(ConvNormAct(widths[0], widths[0]), nn.MaxPool2d(2)),
                nn.Sequential(ConvNormAct(widths[0], widths[1]), nn.MaxPool2d(2)),
                nn.Sequential(ConvNormAct(widths[1], widths[2]), nn.MaxPool2d(2)),
            ]
        )
        self.feature_info = [
            FeatureLevel(f"stages.{i}", c, 2 ** (i + 1)) for i, c in enumerate(widths)
        ]
        self.num_features = widths[-1]
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(self.num_features, num_classes)
        self.num_classes = num_classes

    def forward_pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_pyramid(x)[-1]

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.dropout(torch.flatten(self.pool(features), 1))
        return x if pre_logits else self.fc(x)

    def reset_classifier(self, num_classes: int) -> None:
        self.fc = nn.Linear(self.num_features, num_classes)
        self.num_classes = num_classes

    def classifier_module_names(self) -> list[str]:
        return ["fc"]


def small_cnn(num_classes: int = 10, in_channels: int = 3, **kwargs) -> SmallCNN:
    return SmallCNN(num_classes=num_classes, in_channels=in_channels, **kwargs)


MODELS = {
    "small_cnn": ModelSpec(
        small_cnn, "classification", (3, 32, 32), "3-stage CNN for small inputs"
    ),
}
