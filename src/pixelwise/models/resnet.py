"""ResNet (He et al., 2016, "Deep Residual Learning for Image Recognition").

A residual block learns ``F(x)`` and outputs ``relu(F(x) + shortcut(x))``; the
shortcut is the identity unless the block changes resolution or width, where the paper
offers option A (subsample and zero-pad the new channels: no parameters) and option B
(a strided 1x1 convolution + batch norm: a "projection").

Two block types:

- ``BasicBlock`` (ResNet-18/34 and the CIFAR ResNets): 3x3 → 3x3, ``expansion = 1``.
- ``Bottleneck`` (ResNet-50/101/152): 1x1 reduce → 3x3 → 1x1 expand to 4x the width,
  ``expansion = 4``; the stride sits on the 3x3 conv (torchvision's "ResNet v1.5").

The ImageNet network is a stem (7x7/2 conv, 3x3/2 max-pool) and four stages of 64,
128, 256, 512 base channels, stages 2-4 starting with stride 2. The CIFAR network of
section 4.2 is a 3x3 stem and three stages of 16, 32, 64 channels with ``n`` blocks
each, depth ``6n + 2``. Both are one :class:`ResNet` here, so the CIFAR options
(``cifar_stem``, ``shortcut="A"``) apply to either.

Layer names equal torchvision's (``conv1``, ``bn1``, ``layer1.0.conv1``, ``fc``), so its
state dicts load unchanged. ``replace_stride_with_dilation`` (DeepLab's "atrous"
trick) keeps a stage at the previous resolution and dilates its 3x3 convs instead,
exactly as torchvision does, which its FCN and DeepLabV3 rely on.

``drop_path_rate`` switches on stochastic depth (Huang et al., 2016, "Deep Networks with
Stochastic Depth"): in training, each block's residual branch is dropped for a whole
sample with a probability growing linearly from 0 at the first block to the rate at the
last, as timm does, and the kept ones are scaled by ``1 / (1 - p)``
(``torchvision.ops.StochasticDepth``). It has no parameters: the state-dict keys and
torchvision's weights are unchanged, and evaluation is the plain network.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .base import Classifier, FeatureLevel, ModelSpec
from .layers import drop_path, drop_path_rates

NormLayer = Callable[[int], nn.Module]
Shortcut = Literal["A", "B"]


def conv3x3(
    in_channels: int, out_channels: int, stride: int = 1, groups: int = 1, dilation: int = 1
) -> nn.Conv2d:
    """3x3 conv, no bias (batch norm follows); padding = dilation keeps the size at stride 1."""
    return nn.Conv2d(
        in_channels,
        out_channels,
        kernel_size=3,
        stride=stride,
        padding=dilation,
        groups=groups,
        dilation=dilation,
        bias=False,
    )


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)


class PadShortcut(nn.Module):
    """Option A shortcut: take every ``stride``-th pixel and zero-pad the new channels.

    Parameter-free, which is what gives the CIFAR ResNets their published sizes.
    ``x[..., ::s, ::s]`` has ``ceil(H / s)`` rows, the same as the block's strided 3x3.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.extra = out_channels - in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        before = self.extra // 2
        return F.pad(x, (0, 0, 0, 0, before, self.extra - before))


def projection_shortcut(
    in_channels: int, out_channels: int, stride: int, norm_layer: NormLayer
) -> nn.Sequential:
    """Option B shortcut: strided 1x1 conv + norm (torchvision's ``downsample``)."""
    return nn.Sequential(conv1x1(in_channels, out_channels, stride), norm_layer(out_channels))


class BasicBlock(nn.Module):
    """Two 3x3 convs: ``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``.

    Unlike torchvision's, it accepts ``dilation > 1`` (both convs dilated), so a dilated
    ResNet-18/34 can serve as a segmentation encoder.
    """

    expansion = 1

    def __init__(
        self,
        in_channels: int,
        channels: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        groups: int = 1,
        base_width: int = 64,
        dilation: int = 1,
        norm_layer: NormLayer = nn.BatchNorm2d,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError(
                f"BasicBlock supports groups=1 and width_per_group=64, got {groups} and "
                f"{base_width}; grouped or wide ResNets use Bottleneck (resnet50 and up)"
            )
        self.conv1 = conv3x3(in_channels, channels, stride, dilation=dilation)
        self.bn1 = norm_layer(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(channels, channels, dilation=dilation)
        self.bn2 = norm_layer(channels)
        self.downsample = downsample
        self.drop_path = drop_path(drop_path_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(self.drop_path(out) + identity)


class Bottleneck(nn.Module):
    """1x1 reduce → 3x3 (strided, dilated, grouped) → 1x1 expand to ``4 * channels``.

    Inner width = ``channels * width_per_group / 64 * groups`` (ResNeXt / Wide ResNet).
    """

    expansion = 4

    def __init__(
        self,
        in_channels: int,
        channels: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        groups: int = 1,
        base_width: int = 64,
        dilation: int = 1,
        norm_layer: NormLayer = nn.BatchNorm2d,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        width = int(channels * (base_width / 64.0)) * groups
        self.conv1 = conv1x1(in_channels, width)
        self.bn1 = norm_layer(width)
        self.conv2 = conv3x3(width, width, stride, groups, dilation)
        self.bn2 = norm_layer(width)
        self.conv3 = conv1x1(width, channels * self.expansion)
        self.bn3 = norm_layer(channels * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.drop_path = drop_path(drop_path_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(self.drop_path(out) + identity)


Block = type[BasicBlock] | type[Bottleneck]


class ResNet(Classifier):
    """Stem, then ``len(layers)`` stages (``layer1``, ``layer2``, ...), pooling, ``fc``.

    Args:
        block: ``BasicBlock`` or ``Bottleneck``.
        layers: blocks per stage, e.g. ``[3, 4, 6, 3]`` for ResNet-50.
        widths: base channels per stage; the stem has ``widths[0]`` channels.
        cifar_stem: a 3x3 stride-1 first conv and no max-pool, for 32x32 inputs.
        shortcut: ``"B"`` projects where the shape changes (torchvision), ``"A"`` pads.
        zero_init_residual: start each block's last BN at gamma = 0, so every block
            begins as the identity (Goyal et al., 2017); helps large-batch training.
        groups, width_per_group: Bottleneck inner width (ResNeXt, Wide ResNet).
        replace_stride_with_dilation: one flag per stage after the first; a true flag
            keeps that stage at the previous stride and multiplies the dilation by 2.
        norm_layer: normalisation taking the channel count, e.g. ``nn.BatchNorm2d``.
        drop_path_rate: stochastic depth of the last block (linear from 0 at the first).
    """

    def __init__(
        self,
        block: Block,
        layers: Sequence[int],
        num_classes: int = 1000,
        in_channels: int = 3,
        widths: Sequence[int] = (64, 128, 256, 512),
        cifar_stem: bool = False,
        shortcut: Shortcut = "B",
        zero_init_residual: bool = False,
        groups: int = 1,
        width_per_group: int = 64,
        replace_stride_with_dilation: Sequence[bool] | None = None,
        norm_layer: NormLayer = nn.BatchNorm2d,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if len(widths) != len(layers):
            raise ValueError(
                f"ResNet: {len(layers)} stages need {len(layers)} widths, got {widths}"
            )
        if replace_stride_with_dilation is None:
            replace_stride_with_dilation = [False] * (len(layers) - 1)
        if len(replace_stride_with_dilation) != len(layers) - 1:
            raise ValueError(
                f"replace_stride_with_dilation needs one flag per stage after the first "
                f"({len(layers) - 1}), got {list(replace_stride_with_dilation)}"
            )
        if shortcut not in ("A", "B"):
            raise ValueError(
                f"shortcut must be 'A' (zero-pad) or 'B' (projection), got {shortcut!r}"
            )
        self.groups = groups
        self.base_width = width_per_group
        self.norm_layer = norm_layer
        self.shortcut = shortcut
        if not 0 <= drop_path_rate < 1:
            raise ValueError(f"drop_path_rate must be in [0, 1), got {drop_path_rate}")
        self.block_drop_rates = drop_path_rates(drop_path_rate, sum(layers))

        # Stem: 7x7/2 conv + 3x3/2 max-pool (stride 4), or a 3x3/1 conv for CIFAR.
        stem_width = widths[0]
        if cifar_stem:
            self.conv1 = nn.Conv2d(in_channels, stem_width, 3, stride=1, padding=1, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_channels, stem_width, 7, stride=2, padding=3, bias=False)
        self.bn1 = norm_layer(stem_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity() if cifar_stem else nn.MaxPool2d(3, stride=2, padding=1)
        stride = 1 if cifar_stem else 2
        self.feature_info = [FeatureLevel("relu", stem_width, stride)]
        if not cifar_stem:
            stride *= 2  # the max-pool

        # Stages: the first keeps the resolution, each later one halves it (or dilates).
        self.inplanes = stem_width
        self.dilation = 1
        self.stage_names: list[str] = []
        for i, (width, depth) in enumerate(zip(widths, layers)):
            stage_stride = 1 if i == 0 else 2
            dilate = i > 0 and replace_stride_with_dilation[i - 1]
            name = f"layer{i + 1}"
            self.add_module(name, self._make_layer(block, width, depth, stage_stride, dilate))
            self.stage_names.append(name)
            stride *= 1 if dilate else stage_stride
            self.feature_info.append(FeatureLevel(name, self.inplanes, stride))

        self.num_features = self.inplanes
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(self.num_features, num_classes)
        self.num_classes = num_classes
        self._init_weights(zero_init_residual)

    def _make_layer(
        self, block: Block, channels: int, blocks: int, stride: int, dilate: bool
    ) -> nn.Sequential:
        """One stage; the first block changes stride/width, so it alone has a shortcut.

        When dilating, the first block still uses the previous dilation (it sees the
        input before the would-be downsampling) and later blocks the new one, as in
        torchvision.
        """
        previous_dilation = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        out_channels = channels * block.expansion
        built = sum(len(getattr(self, name)) for name in self.stage_names)
        rates = self.block_drop_rates[built : built + blocks]
        downsample: nn.Module | None = None
        if stride != 1 or self.inplanes != out_channels:
            if self.shortcut == "A":
                downsample = PadShortcut(self.inplanes, out_channels, stride)
            else:
                downsample = projection_shortcut(
                    self.inplanes, out_channels, stride, self.norm_layer
                )
        common = dict(groups=self.groups, base_width=self.base_width, norm_layer=self.norm_layer)
        stage = [
            block(
                self.inplanes,
                channels,
                stride,
                downsample,
                dilation=previous_dilation,
                drop_path_rate=rates[0],
                **common,
            )
        ]
        self.inplanes = out_channels
        for i in range(1, blocks):
            stage.append(
                block(
                    out_channels,
                    channels,
                    dilation=self.dilation,
                    drop_path_rate=rates[i],
                    **common,
                )
            )
        return nn.Sequential(*stage)

    def _init_weights(self, zero_init_residual: bool) -> None:
        """He-normal convs (fan-out), BN gamma 1 / beta 0, as torchvision."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.zeros_(m.bn3.weight)
                elif isinstance(m, BasicBlock):
                    nn.init.zeros_(m.bn2.weight)

    def forward_pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.relu(self.bn1(self.conv1(x)))
        features = [x]
        x = self.maxpool(x)
        for name in self.stage_names:
            x = getattr(self, name)(x)
            features.append(x)
        return features

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for name in self.stage_names:
            x = getattr(self, name)(x)
        return x

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(features), 1)
        return x if pre_logits else self.fc(x)

    def reset_classifier(self, num_classes: int) -> None:
        self.fc = nn.Linear(self.num_features, num_classes)
        self.num_classes = num_classes

    def classifier_module_names(self) -> list[str]:
        return ["fc"]


# ImageNet ResNets (section 3.4, table 1). Options pass through to ResNet, e.g.
# ``resnet50(replace_stride_with_dilation=[False, True, True])`` or ``cifar_stem=True``.


def resnet18(num_classes: int = 1000, in_channels: int = 3, **options) -> ResNet:
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes, in_channels, **options)


def resnet34(num_classes: int = 1000, in_channels: int = 3, **options) -> ResNet:
    return ResNet(BasicBlock, [3, 4, 6, 3], num_classes, in_channels, **options)


def resnet50(num_classes: int = 1000, in_channels: int = 3, **options) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes, in_channels, **options)


def resnet101(num_classes: int = 1000, in_channels: int = 3, **options) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 23, 3], num_classes, in_channels, **options)


def resnet152(num_classes: int = 1000, in_channels: int = 3, **options) -> ResNet:
    return ResNet(Bottleneck, [3, 8, 36, 3], num_classes, in_channels, **options)


# CIFAR ResNets (section 4.2): depth 6n + 2, three stages of n BasicBlocks at 16, 32,
# 64 channels, option A shortcuts; 0.27M, 0.46M, 0.66M, 0.85M, 1.7M parameters.


def cifar_resnet(
    depth: int, num_classes: int = 10, in_channels: int = 3, shortcut: Shortcut = "A", **options
) -> ResNet:
    """A CIFAR ResNet of ``depth = 6n + 2`` layers; ``shortcut="B"`` for 1x1 projections."""
    if (depth - 2) % 6 != 0:
        raise ValueError(f"CIFAR ResNet depth must be 6n + 2 (20, 32, 44, 56, 110), got {depth}")
    n = (depth - 2) // 6
    return ResNet(
        BasicBlock,
        [n, n, n],
        num_classes,
        in_channels,
        widths=(16, 32, 64),
        cifar_stem=True,
        shortcut=shortcut,
        **options,
    )


def resnet20(num_classes: int = 10, in_channels: int = 3, **options) -> ResNet:
    return cifar_resnet(20, num_classes, in_channels, **options)


def resnet32(num_classes: int = 10, in_channels: int = 3, **options) -> ResNet:
    return cifar_resnet(32, num_classes, in_channels, **options)


def resnet44(num_classes: int = 10, in_channels: int = 3, **options) -> ResNet:
    return cifar_resnet(44, num_classes, in_channels, **options)


def resnet56(num_classes: int = 10, in_channels: int = 3, **options) -> ResNet:
    return cifar_resnet(56, num_classes, in_channels, **options)


def resnet110(num_classes: int = 10, in_channels: int = 3, **options) -> ResNet:
    return cifar_resnet(110, num_classes, in_channels, **options)


_IMAGENET = (3, 224, 224)
_CIFAR = (3, 32, 32)

MODELS = {
    "resnet18": ModelSpec(resnet18, "classification", _IMAGENET, "ResNet-18, BasicBlock, 11.7M"),
    "resnet34": ModelSpec(resnet34, "classification", _IMAGENET, "ResNet-34, BasicBlock, 21.8M"),
    "resnet50": ModelSpec(resnet50, "classification", _IMAGENET, "ResNet-50, Bottleneck, 25.6M"),
    "resnet101": ModelSpec(resnet101, "classification", _IMAGENET, "ResNet-101, Bottleneck, 44.5M"),
    "resnet152": ModelSpec(resnet152, "classification", _IMAGENET, "ResNet-152, Bottleneck, 60.2M"),
    "resnet20": ModelSpec(resnet20, "classification", _CIFAR, "CIFAR ResNet-20, 0.27M"),
    "resnet32": ModelSpec(resnet32, "classification", _CIFAR, "CIFAR ResNet-32, 0.46M"),
    "resnet44": ModelSpec(resnet44, "classification", _CIFAR, "CIFAR ResNet-44, 0.66M"),
    "resnet56": ModelSpec(resnet56, "classification", _CIFAR, "CIFAR ResNet-56, 0.85M"),
    "resnet110": ModelSpec(resnet110, "classification", _CIFAR, "CIFAR ResNet-110, 1.7M"),
}
