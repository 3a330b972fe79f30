"""ShuffleNetV2 (Ma et al., 2018, https://arxiv.org/abs/1807.11164).

The paper measures speed rather than multiply-adds and derives four rules: equal
input and output widths, few groups, few branches, few element-wise operations. Its
unit follows them: **channel split** sends half of the channels through untouched
and the other half through 1 x 1 → 3 x 3 depthwise → 1 x 1 convs (all the same width);
the halves are concatenated (no addition) and a **channel shuffle** interleaves them so
that the next unit's split mixes information from both. A down-sampling unit skips
the split: both branches see the whole input with stride 2, doubling the channels.

State-dict keys and parameter counts equal torchvision's ``shufflenet_v2_x*``.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import Classifier, FeatureLevel, ModelSpec


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave channel groups: view C as (groups, C/groups), transpose, flatten.

    With 2 groups, channels ``[a0 a1 a2 b0 b1 b2]`` become ``[a0 b0 a1 b1 a2 b2]``.
    """
    n, c, h, w = x.shape
    x = x.view(n, groups, c // groups, h, w).transpose(1, 2)
    return x.reshape(n, c, h, w)


def conv_bn(
    in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, depthwise: bool = False
) -> list[nn.Module]:
    """A bias-free conv and its batch norm, as a list to splice into an ``nn.Sequential``."""
    groups = in_channels if depthwise else 1
    conv = nn.Conv2d(
        in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups, bias=False
    )
    return [conv, nn.BatchNorm2d(out_channels)]


class ShuffleUnit(nn.Module):
    """One ShuffleNetV2 unit (Fig. 3c at stride 1, Fig. 3d at stride 2).

    ``branch2`` is 1 x 1 conv-BN-ReLU → 3 x 3 depthwise conv-BN (no ReLU) → 1 x 1
    conv-BN-ReLU. At stride 2, ``branch1`` is 3 x 3 depthwise conv-BN → 1 x 1
    conv-BN-ReLU on the full input; at stride 1 it is the identity on the first half.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        half = out_channels // 2
        if stride == 1 and in_channels != 2 * half:
            raise ValueError(
                f"a stride-1 shuffle unit needs in_channels == out_channels, "
                f"got {in_channels} and {out_channels}"
            )
        if stride > 1:
            self.branch1 = nn.Sequential(
                *conv_bn(in_channels, in_channels, 3, stride, depthwise=True),
                *conv_bn(in_channels, half, 1),
                nn.ReLU(inplace=True),
            )
        else:
            self.branch1 = nn.Sequential()  # no parameters; kept for torchvision's layout
        branch2_in = in_channels if stride > 1 else half
        self.branch2 = nn.Sequential(
            *conv_bn(branch2_in, half, 1),
            nn.ReLU(inplace=True),
            *conv_bn(half, half, 3, stride, depthwise=True),
            *conv_bn(half, half, 1),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            kept, processed = x.chunk(2, dim=1)  # channel split
            out = torch.cat((kept, self.branch2(processed)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


class ShuffleNetV2(Classifier):
    """``conv1`` (3 x 3, stride 2) → max pool → stages 2-4 → ``conv5`` (1 x 1) → pool → ``fc``.

    Each stage starts with one stride-2 unit; ``widths`` are the outputs of conv1,
    stages 2-4 and conv5 (Table 5 of the paper). Pyramid levels: conv1 (stride 2),
    the max pool (4), stage2 (8), stage3 (16), conv5 (32).
    """

    def __init__(
        self, repeats: list[int], widths: list[int], num_classes: int = 1000, in_channels: int = 3
    ) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(
            *conv_bn(in_channels, widths[0], 3, stride=2), nn.ReLU(inplace=True)
        )
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.stage2 = self._make_stage(widths[0], widths[1], repeats[0])
        self.stage3 = self._make_stage(widths[1], widths[2], repeats[1])
        self.stage4 = self._make_stage(widths[2], widths[3], repeats[2])
        self.conv5 = nn.Sequential(*conv_bn(widths[3], widths[4], 1), nn.ReLU(inplace=True))
        self.fc = nn.Linear(widths[4], num_classes)
        self.num_features = widths[4]
        self.num_classes = num_classes
        self.feature_info = [
            FeatureLevel("conv1", widths[0], 2),
            FeatureLevel("maxpool", widths[0], 4),
            FeatureLevel("stage2", widths[1], 8),
            FeatureLevel("stage3", widths[2], 16),
            FeatureLevel("conv5", widths[4], 32),
        ]

    @staticmethod
    def _make_stage(in_channels: int, out_channels: int, repeats: int) -> nn.Sequential:
        units = [ShuffleUnit(in_channels, out_channels, 2)]
        units += [ShuffleUnit(out_channels, out_channels, 1) for _ in range(repeats - 1)]
        return nn.Sequential(*units)

    def forward_pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        c1 = self.conv1(x)
        c2 = self.maxpool(c1)
        c3 = self.stage2(c2)
        c4 = self.stage3(c3)
        c5 = self.conv5(self.stage4(c4))
        return [c1, c2, c3, c4, c5]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))
        x = self.stage4(self.stage3(self.stage2(x)))
        return self.conv5(x)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = features.mean((2, 3))
        return x if pre_logits else self.fc(x)

    def reset_classifier(self, num_classes: int) -> None:
        self.fc = nn.Linear(self.num_features, num_classes)
        self.num_classes = num_classes

    def classifier_module_names(self) -> list[str]:
        return ["fc"]


# Units per stage (the same for every width) and the widths per multiplier (Table 5).
REPEATS = [4, 8, 4]
WIDTHS = {
    "x0_5": [24, 48, 96, 192, 1024],
    "x1_0": [24, 116, 232, 464, 1024],
    "x1_5": [24, 176, 352, 704, 1024],
    "x2_0": [24, 244, 488, 976, 2048],
}


def shufflenet_v2_x0_5(num_classes: int = 1000, in_channels: int = 3) -> ShuffleNetV2:
    """ShuffleNetV2 0.5x: 1.4M parameters."""
    return ShuffleNetV2(REPEATS, WIDTHS["x0_5"], num_classes, in_channels)


def shufflenet_v2_x1_0(num_classes: int = 1000, in_channels: int = 3) -> ShuffleNetV2:
    """ShuffleNetV2 1.0x: 2.3M parameters."""
    return ShuffleNetV2(REPEATS, WIDTHS["x1_0"], num_classes, in_channels)


def shufflenet_v2_x1_5(num_classes: int = 1000, in_channels: int = 3) -> ShuffleNetV2:
    """ShuffleNetV2 1.5x: 3.5M parameters."""
    return ShuffleNetV2(REPEATS, WIDTHS["x1_5"], num_classes, in_channels)


def shufflenet_v2_x2_0(num_classes: int = 1000, in_channels: int = 3) -> ShuffleNetV2:
    """ShuffleNetV2 2.0x: 7.4M parameters."""
    return ShuffleNetV2(REPEATS, WIDTHS["x2_0"], num_classes, in_channels)


MODELS = {
    "shufflenet_v2_x0_5": ModelSpec(
        shufflenet_v2_x0_5,
        "classification",
        (3, 224, 224),
        "ShuffleNetV2 0.5x, channel split + shuffle (1.4M params)",
    ),
    "shufflenet_v2_x1_0": ModelSpec(
        shufflenet_v2_x1_0,
        "classification",
        (3, 224, 224),
        "ShuffleNetV2 1.0x, channel split + shuffle (2.3M params)",
    ),
    "shufflenet_v2_x1_5": ModelSpec(
        shufflenet_v2_x1_5,
        "classification",
        (3, 224, 224),
        "ShuffleNetV2 1.5x, channel split + shuffle (3.5M params)",
    ),
    "shufflenet_v2_x2_0": ModelSpec(
        shufflenet_v2_x2_0,
        "classification",
        (3, 224, 224),
        "ShuffleNetV2 2.0x, channel split + shuffle (7.4M params)",
    ),
}
