"""MobileNetV2 and MobileNetV3: networks built from depthwise-separable convolutions.

A k x k convolution from C to C' channels costs ``k² · C · C'`` multiply-adds per pixel;
splitting it into a depthwise k x k convolution (one filter per channel) and a 1 x 1
pointwise one costs ``k² · C + C · C'``, about ``k²`` times less. MobileNetV2
(Sandler et al., 2018, https://arxiv.org/abs/1801.04381) stacks these as *inverted
residuals*: expand the channels t-fold with a 1 x 1 conv, filter them depthwise, project
back with a linear 1 x 1 conv, and add the input when the shapes match. MobileNetV3
(Howard et al., 2019, https://arxiv.org/abs/1905.02244) keeps that block, adds
squeeze-and-excitation and the cheap hard-swish activation, and takes its layer
settings from an architecture search.

State-dict keys and parameter counts equal torchvision's ``mobilenet_v2``,
``mobilenet_v3_small`` and ``mobilenet_v3_large`` for the same ``width_mult``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from .base import Classifier, FeatureLevel, ModelSpec
from .layers import ConvNormAct


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count to the nearest multiple of ``divisor``, losing at most 10%.

    The rule of the original TensorFlow code; kept so that ``width_mult`` gives the
    same widths (and so the same weights) as torchvision.
    """
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


class SqueezeExcitation(nn.Module):
    """Channel attention (Hu et al., 2018): ``x · σ(W₂ δ(W₁ mean_hw(x)))``.

    Global pooling summarises each channel, a two-layer bottleneck (1 x 1 convs
    ``fc1``, ``fc2``) turns that summary into a per-channel gate in [0, 1]. MobileNetV3
    uses ReLU for δ and the piecewise-linear hard sigmoid ``relu6(x + 3) / 6`` for σ.
    """

    def __init__(self, channels: int, squeeze_channels: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, channels, 1)
        self.activation = nn.ReLU()
        self.scale_activation = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.mean((2, 3), keepdim=True)
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(scale))))
        return x * scale


# --------------------------------------------------------------------------- MobileNetV2


class InvertedResidualV2(nn.Module):
    """MobileNetV2's block: 1 x 1 expand (ReLU6) → 3 x 3 depthwise (ReLU6) → 1 x 1 project.

    The projection has no activation ("linear bottleneck"): a ReLU on the narrow
    representation would destroy information. The skip connection joins the narrow ends.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = int(round(in_channels * expand_ratio))
        self.use_residual = stride == 1 and in_channels == out_channels
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvNormAct(in_channels, hidden, 1, act_layer=nn.ReLU6))
        layers += [
            ConvNormAct(hidden, hidden, 3, stride=stride, groups=hidden, act_layer=nn.ReLU6),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_residual else self.conv(x)


# Table 2 of the paper: expansion t, output channels c, repeats n, first stride s.
MOBILENET_V2_SETTINGS = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


# --------------------------------------------------------------------------- MobileNetV3


@dataclass(frozen=True)
class BlockConfig:
    """One row of Tables 1 and 2 of the MobileNetV3 paper (channels before ``width_mult``)."""

    in_channels: int
    kernel_size: int
    expanded_channels: int
    out_channels: int
    use_se: bool
    use_hardswish: bool
    stride: int


class InvertedResidualV3(nn.Module):
    """MobileNetV3's block: V2's inverted residual with k x k depthwise, optional SE and h-swish.

    hard-swish is ``x · relu6(x + 3) / 6``, a cheap stand-in for swish ``x · σ(x)``.
    The SE gate sits between the depthwise and the projection, squeezing to a quarter.
    """

    def __init__(self, cfg: BlockConfig, width_mult: float, norm_layer: Callable) -> None:
        super().__init__()
        in_channels = make_divisible(cfg.in_channels * width_mult)
        expanded = make_divisible(cfg.expanded_channels * width_mult)
        out_channels = make_divisible(cfg.out_channels * width_mult)
        act = nn.Hardswish if cfg.use_hardswish else nn.ReLU
        self.use_residual = cfg.stride == 1 and in_channels == out_channels
        layers: list[nn.Module] = []
        if expanded != in_channels:
            layers.append(
                ConvNormAct(in_channels, expanded, 1, norm_layer=norm_layer, act_layer=act)
            )
        layers.append(
            ConvNormAct(
                expanded,
                expanded,
                cfg.kernel_size,
                stride=cfg.stride,
                groups=expanded,
                norm_layer=norm_layer,
                act_layer=act,
            )
        )
        if cfg.use_se:
            layers.append(SqueezeExcitation(expanded, make_divisible(expanded // 4)))
        layers.append(ConvNormAct(expanded, out_channels, 1, norm_layer=norm_layer, act_layer=None))
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.use_residual else self.block(x)


# Columns: in, kernel, expanded, out, SE, hard-swish, stride.
MOBILENET_V3_LARGE_SETTINGS = [
    BlockConfig(16, 3, 16, 16, False, False, 1),
    BlockConfig(16, 3, 64, 24, False, False, 2),
    BlockConfig(24, 3, 72, 24, False, False, 1),
    BlockConfig(24, 5, 72, 40, True, False, 2),
    BlockConfig(40, 5, 120, 40, True, False, 1),
    BlockConfig(40, 5, 120, 40, True, False, 1),
    BlockConfig(40, 3, 240, 80, False, True, 2),
    BlockConfig(80, 3, 200, 80, False, True, 1),
    BlockConfig(80, 3, 184, 80, False, True, 1),
    BlockConfig(80, 3, 184, 80, False, True, 1),
    BlockConfig(80, 3, 480, 112, True, True, 1),
    BlockConfig(112, 3, 672, 112, True, True, 1),
    BlockConfig(112, 5, 672, 160, True, True, 2),
    BlockConfig(160, 5, 960, 160, True, True, 1),
    BlockConfig(160, 5, 960, 160, True, True, 1),
]
MOBILENET_V3_SMALL_SETTINGS = [
    BlockConfig(16, 3, 16, 16, True, False, 2),
    BlockConfig(16, 3, 72, 24, False, False, 2),
    BlockConfig(24, 3, 88, 24, False, False, 1),
    BlockConfig(24, 5, 96, 40, True, True, 2),
    BlockConfig(40, 5, 240, 40, True, True, 1),
    BlockConfig(40, 5, 240, 40, True, True, 1),
    BlockConfig(40, 5, 120, 48, True, True, 1),
    BlockConfig(48, 5, 144, 48, True, True, 1),
    BlockConfig(48, 5, 288, 96, True, True, 2),
    BlockConfig(96, 5, 576, 96, True, True, 1),
    BlockConfig(96, 5, 576, 96, True, True, 1),
]


# --------------------------------------------------------------------------- the model


class MobileNet(Classifier):
    """``features`` (stem, blocks, last 1 x 1 conv) → global average pool → ``classifier``.

    Both versions share this shape, so they share this class; ``features`` and
    ``classifier`` are built by :func:`mobilenet_v2_layers` / :func:`mobilenet_v3_layers`.
    The pyramid level at each stride is the output of the last ``features`` entry
    that runs at that stride; the deepest level is the last conv (as in
    ``forward_features``), like torchvision's segmentation backbones.
    """

    def __init__(
        self,
        features: list[nn.Module],
        classifier: list[nn.Module],
        channels: list[int],
        strides: list[int],
        num_classes: int,
    ) -> None:
        super().__init__()
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(*classifier)
        self.num_classes = num_classes
        self.num_features = self.classifier[-1].in_features
        # The last index at each stride ends a pyramid level.
        self.level_indices = [
            i for i in range(len(strides)) if i + 1 == len(strides) or strides[i + 1] != strides[i]
        ]
        self.feature_info = [
            FeatureLevel(f"features.{i}", channels[i], strides[i]) for i in self.level_indices
        ]
        init_weights(self)

    def forward_pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.level_indices:
                features.append(x)
        return features

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(nn.functional.adaptive_avg_pool2d(features, 1), 1)
        x = self.classifier[:-1](x)  # V2: dropout; V3: linear, hard-swish, dropout
        return x if pre_logits else self.classifier[-1](x)

    def reset_classifier(self, num_classes: int) -> None:
        self.classifier[-1] = nn.Linear(self.num_features, num_classes)
        self.num_classes = num_classes

    def classifier_module_names(self) -> list[str]:
        return ["classifier"]


def init_weights(model: nn.Module) -> None:
    """torchvision's MobileNet initialisation: He-normal convs, small-normal linears."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


def mobilenet_v2_layers(
    in_channels: int, width_mult: float
) -> tuple[list[nn.Module], list[int], list[int]]:
    """MobileNetV2's ``features``, with the channels and stride after each entry."""
    channels = make_divisible(32 * width_mult)
    layers: list[nn.Module] = [ConvNormAct(in_channels, channels, 3, stride=2, act_layer=nn.ReLU6)]
    widths, strides = [channels], [2]
    for t, c, n, s in MOBILENET_V2_SETTINGS:
        out_channels = make_divisible(c * width_mult)
        for i in range(n):
            stride = s if i == 0 else 1
            layers.append(InvertedResidualV2(channels, out_channels, stride, expand_ratio=t))
            channels = out_channels
            widths.append(channels)
            strides.append(strides[-1] * stride)
    last_channels = make_divisible(1280 * max(1.0, width_mult))  # never thinner than 1280
    layers.append(ConvNormAct(channels, last_channels, 1, act_layer=nn.ReLU6))
    return layers, [*widths, last_channels], [*strides, strides[-1]]


def mobilenet_v3_layers(
    settings: list[BlockConfig], in_channels: int, width_mult: float
) -> tuple[list[nn.Module], list[int], list[int]]:
    """MobileNetV3's ``features``: h-swish stem, the searched blocks, a 6x-wide 1 x 1 conv."""
    # torchvision's batch-norm settings for V3 (the TF defaults), needed for equal outputs.
    norm_layer = partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)
    stem_channels = make_divisible(settings[0].in_channels * width_mult)
    layers: list[nn.Module] = [
        ConvNormAct(
            in_channels, stem_channels, 3, stride=2, norm_layer=norm_layer, act_layer=nn.Hardswish
        )
    ]
    widths, strides = [stem_channels], [2]
    for cfg in settings:
        layers.append(InvertedResidualV3(cfg, width_mult, norm_layer))
        widths.append(make_divisible(cfg.out_channels * width_mult))
        strides.append(strides[-1] * cfg.stride)
    last_channels = 6 * widths[-1]
    layers.append(
        ConvNormAct(widths[-1], last_channels, 1, norm_layer=norm_layer, act_layer=nn.Hardswish)
    )
    return layers, [*widths, last_channels], [*strides, strides[-1]]


def mobilenet_v2(
    num_classes: int = 1000, in_channels: int = 3, width_mult: float = 1.0, dropout: float = 0.2
) -> MobileNet:
    """MobileNetV2: 3.5M parameters at ``width_mult=1``; the head is dropout → linear."""
    layers, channels, strides = mobilenet_v2_layers(in_channels, width_mult)
    classifier = [nn.Dropout(dropout), nn.Linear(channels[-1], num_classes)]
    return MobileNet(layers, classifier, channels, strides, num_classes)


def _mobilenet_v3(
    settings: list[BlockConfig],
    head_channels: int,
    num_classes: int,
    in_channels: int,
    width_mult: float,
    dropout: float,
) -> MobileNet:
    """A MobileNetV3 whose head is linear → h-swish → dropout → linear (Fig. 5 of the paper)."""
    layers, channels, strides = mobilenet_v3_layers(settings, in_channels, width_mult)
    hidden = make_divisible(head_channels * width_mult)
    classifier = [
        nn.Linear(channels[-1], hidden),
        nn.Hardswish(inplace=True),
        nn.Dropout(dropout, inplace=True),
        nn.Linear(hidden, num_classes),
    ]
    return MobileNet(layers, classifier, channels, strides, num_classes)


def mobilenet_v3_large(
    num_classes: int = 1000, in_channels: int = 3, width_mult: float = 1.0, dropout: float = 0.2
) -> MobileNet:
    """MobileNetV3-Large: 5.5M parameters at ``width_mult=1``."""
    return _mobilenet_v3(
        MOBILENET_V3_LARGE_SETTINGS, 1280, num_classes, in_channels, width_mult, dropout
    )


def mobilenet_v3_small(
    num_classes: int = 1000, in_channels: int = 3, width_mult: float = 1.0, dropout: float = 0.2
) -> MobileNet:
    """MobileNetV3-Small: 2.5M parameters at ``width_mult=1``."""
    return _mobilenet_v3(
        MOBILENET_V3_SMALL_SETTINGS, 1024, num_classes, in_channels, width_mult, dropout
    )


MODELS = {
    "mobilenet_v2": ModelSpec(
        mobilenet_v2,
        "classification",
        (3, 224, 224),
        "MobileNetV2, inverted residuals (3.5M params)",
    ),
    "mobilenet_v3_small": ModelSpec(
        mobilenet_v3_small,
        "classification",
        (3, 224, 224),
        "MobileNetV3-Small, SE + hard-swish (2.5M params)",
    ),
    "mobilenet_v3_large": ModelSpec(
        mobilenet_v3_large,
        "classification",
        (3, 224, 224),
        "MobileNetV3-Large, SE + hard-swish (5.5M params)",
    ),
}
