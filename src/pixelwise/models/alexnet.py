"""AlexNet (Krizhevsky et al., 2012), in the one-GPU form of Krizhevsky, 2014.

Five convolutions (11x11/4, 5x5, then three 3x3) with ReLU and overlapping 3x3/2
max-pools, then three fully connected layers with dropout. This is the "One weird
trick" variant that torchvision ships (64/192/384/256/256 channels, no local response
normalisation), not the two-GPU original; its layout (``features.<i>``,
``avgpool``, ``classifier.<i>``) is kept so torchvision's weights load unchanged.

Output sizes: conv1 gives ``floor((H + 4 - 11) / 4) + 1``, each pool
``floor((H - 3) / 2) + 1``, so the smallest input is 63x63.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import Classifier, FeatureLevel, ModelSpec


class AlexNet(Classifier):
    def __init__(self, num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.5) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        # The deepest map at each resolution: relu1, relu2, relu5, pool5.
        self.feature_info = [
            FeatureLevel("features.1", 64, 4),
            FeatureLevel("features.4", 192, 8),
            FeatureLevel("features.11", 256, 16),
            FeatureLevel("features.12", 256, 32),
        ]
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.num_features = 4096
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout),
            nn.Linear(256 * 6 * 6, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )
        self.num_classes = num_classes

    def forward_pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = {int(level.name.split(".")[1]) for level in self.feature_info}
        features = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in taps:
                features.append(x)
        return features

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(features), 1)
        x = self.classifier[:-1](x)
        return x if pre_logits else self.classifier[-1](x)

    def reset_classifier(self, num_classes: int) -> None:
        self.classifier[-1] = nn.Linear(self.num_features, num_classes)
        self.num_classes = num_classes

    def classifier_module_names(self) -> list[str]:
        return [f"classifier.{len(self.classifier) - 1}"]


def alexnet(num_classes: int = 1000, in_channels: int = 3, **options) -> AlexNet:
    return AlexNet(num_classes, in_channels, **options)


MODELS = {
    "alexnet": ModelSpec(alexnet, "classification", (3, 224, 224), "AlexNet (one-GPU), 61.1M"),
}
