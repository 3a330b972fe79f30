"""GoogLeNet / Inception v1 (Szegedy et al., 2015, "Going Deeper with Convolutions").

An Inception module runs four branches side by side and concatenates them: a 1x1
conv, 1x1 → 3x3, 1x1 → "5x5", and 3x3 max-pool → 1x1. The 1x1 convs reduce the width
before the expensive convs, which is what keeps 22 layers at 6.6M parameters. Two
auxiliary classifiers, on inception4a and inception4d, add gradient to the middle of
the network during training (weighted 0.3 in the paper) and are dropped at test time.

The layout is torchvision's, including its departures from the paper, so its state
dicts load unchanged: batch norm (eps = 0.001) after every conv, a 3x3 conv in the
"5x5" branch (a bug kept for the ported weights), ceil-mode pools, and aux heads
that average-pool to 4x4 whatever the input size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import Classifier, FeatureLevel, ModelSpec


class BasicConv2d(nn.Module):
    """Conv (no bias) → BN (eps 0.001, as the ported TensorFlow weights) → ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


class Inception(nn.Module):
    """Four parallel branches, concatenated: ``ch1x1 + ch3x3 + ch5x5 + pool_proj`` channels."""

    def __init__(
        self,
        in_channels: int,
        ch1x1: int,
        ch3x3red: int,
        ch3x3: int,
        ch5x5red: int,
        ch5x5: int,
        pool_proj: int,
    ) -> None:
        super().__init__()
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(
            BasicConv2d(in_channels, ch3x3red, kernel_size=1),
            BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1),
        )
        self.branch3 = nn.Sequential(  # 5x5 in the paper; 3x3 in the ported weights
            BasicConv2d(in_channels, ch5x5red, kernel_size=1),
            BasicConv2d(ch5x5red, ch5x5, kernel_size=3, padding=1),
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
            BasicConv2d(in_channels, pool_proj, kernel_size=1),
        )
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [self.branch1, self.branch2, self.branch3, self.branch4]
        return torch.cat([branch(x) for branch in branches], dim=1)


class InceptionAux(nn.Module):
    """Auxiliary classifier: pool to 4x4 → 1x1 conv (128) → fc 1024 → dropout → fc."""

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.7) -> None:
        super().__init__()
        self.conv = BasicConv2d(in_channels, 128, kernel_size=1)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(p=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(F.adaptive_avg_pool2d(x, (4, 4)))
        x = F.relu(self.fc1(torch.flatten(x, 1)), inplace=True)
        return self.fc2(self.dropout(x))


class GoogLeNet(Classifier):
    """Stem (7x7/2, pool, 1x1, 3x3, pool), inception 3a-3b, pool, 4a-4e, pool, 5a-5b.

    In training mode with ``aux_logits`` the forward returns
    ``{"out": logits, "aux": [aux1, aux2]}``; otherwise a logits tensor.
    ``transform_input`` maps an ImageNet-normalised input, ``(x - mean) / std``, to
    the ``(x - 0.5) / 0.5`` the ported weights expect: ``x * std / 0.5 + (mean - 0.5) / 0.5``.
    """

    def __init__(
        self,
        num_classes: int = 1000,
        in_channels: int = 3,
        aux_logits: bool = True,
        transform_input: bool = False,
        init_weights: bool = True,
        dropout: float = 0.2,
        dropout_aux: float = 0.7,
    ) -> None:
        super().__init__()
        if transform_input and in_channels != 3:
            raise ValueError(
                f"transform_input re-normalises RGB and needs in_channels=3, got {in_channels}"
            )
        self.aux_logits = aux_logits
        self.transform_input = transform_input

        self.conv1 = BasicConv2d(in_channels, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)

        # (in, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj): the paper's table 1.
        self.inception3a = Inception(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = Inception(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)

        self.inception4a = Inception(480, 192, 96, 208, 16, 48, 64)
        self.inception4b = Inception(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = Inception(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = Inception(512, 112, 144, 288, 32, 64, 64)
        self.inception4e = Inception(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)

        self.inception5a = Inception(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = Inception(832, 384, 192, 384, 48, 128, 128)

        self.aux1: InceptionAux | None = None
        self.aux2: InceptionAux | None = None
        if aux_logits:
            self.aux1 = InceptionAux(512, num_classes, dropout=dropout_aux)
            self.aux2 = InceptionAux(528, num_classes, dropout=dropout_aux)

        self.feature_info = [
            FeatureLevel("conv1", 64, 2),
            FeatureLevel("conv3", 192, 4),
            FeatureLevel("inception3b", 480, 8),
            FeatureLevel("inception4e", 832, 16),
            FeatureLevel("inception5b", 1024, 32),
        ]
        self.num_features = 1024
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(self.num_features, num_classes)
        self.num_classes = num_classes
        if init_weights:
            self._init_weights()

    def _init_weights(self) -> None:
        """Truncated N(0, 0.01²) in [-2, 2] for convs and linears, as torchvision."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _transform_input(self, x: torch.Tensor) -> torch.Tensor:
        if not self.transform_input:
            return x
        mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
        channels = [x[:, c : c + 1] * (std[c] / 0.5) + (mean[c] - 0.5) / 0.5 for c in range(3)]
        return torch.cat(channels, dim=1)

    def _forward_trunk(
        self,
        x: torch.Tensor,
        levels: list[torch.Tensor] | None = None,
        aux: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """The last feature map; collects the ``feature_info`` maps into ``levels`` and
        the aux logits into ``aux`` when those lists are given."""
        keep = levels.append if levels is not None else lambda level: None
        x = self.conv1(self._transform_input(x))
        keep(x)
        x = self.conv3(self.conv2(self.maxpool1(x)))
        keep(x)
        x = self.inception3b(self.inception3a(self.maxpool2(x)))
        keep(x)

        x = self.inception4a(self.maxpool3(x))
        if aux is not None and self.aux1 is not None:
            aux.append(self.aux1(x))
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        if aux is not None and self.aux2 is not None:
            aux.append(self.aux2(x))
        x = self.inception4e(x)
        keep(x)

        x = self.inception5b(self.inception5a(self.maxpool4(x)))
        keep(x)
        return x

    def forward_pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        levels: list[torch.Tensor] = []
        self._forward_trunk(x, levels=levels)
        return levels

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward_trunk(x)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.dropout(torch.flatten(self.avgpool(features), 1))
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict:
        aux: list[torch.Tensor] | None = [] if self.training and self.aux_logits else None
        logits = self.forward_head(self._forward_trunk(x, aux=aux))
        return {"out": logits, "aux": aux} if aux else logits

    def reset_classifier(self, num_classes: int) -> None:
        self.fc = nn.Linear(self.num_features, num_classes)
        for head in (self.aux1, self.aux2):
            if head is not None:
                head.fc2 = nn.Linear(head.fc2.in_features, num_classes)
        self.num_classes = num_classes

    def classifier_module_names(self) -> list[str]:
        """``fc`` and the aux heads as a whole: torchvision's ImageNet weights ship none."""
        return ["fc", "aux1", "aux2"] if self.aux_logits else ["fc"]


def googlenet(num_classes: int = 1000, in_channels: int = 3, **options) -> GoogLeNet:
    return GoogLeNet(num_classes, in_channels, **options)


MODELS = {
    "googlenet": ModelSpec(
        googlenet, "classification", (3, 224, 224), "Inception v1, 6.6M (+6.4M aux heads)"
    ),
}
