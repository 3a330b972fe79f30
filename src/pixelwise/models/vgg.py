"""VGG (Simonyan & Zisserman, 2015, "Very Deep Convolutional Networks").

Only 3x3 convolutions (stride 1, padding 1) and 2x2 max-pools: two stacked 3x3 convs
see a 5x5 window with fewer parameters (2 * 9C² < 25C²) and one more non-linearity.
Five blocks of 64, 128, 256, 512, 512 channels, each ending in a pool (stride 32),
then three fully connected layers, 4096 → 4096 → classes. Configurations A, B, D, E
of the paper's table 1 are VGG-11, 13, 16, 19; the ``_bn`` variants add batch norm
after every conv (not in the paper; torchvision's).

The layout is torchvision's (``features.<i>`` for a flat conv/BN/ReLU/pool sequence,
``avgpool`` to 7x7, ``classifier.<i>``), so its state dicts load unchanged.
Its pyramid (:func:`feature_levels`, :func:`forward_pyramid`) is the last ReLU before
each pool, then the last pool; SegNet's encoder, built by :func:`make_features` too,
shares it. :attr:`VGG.pool_indices` gives the position of each pool in ``features``.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import Classifier, FeatureLevel, ModelSpec
from .layers import conv_norm_act_layers

# Output channels of each 3x3 conv; "M" is a 2x2 max-pool (paper, table 1).
CONFIGS: dict[str, list[int | str]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M"]
    + [512, 512, 512, 512, "M"],
}


def make_features(
    config: list[int | str], in_channels: int = 3, batch_norm: bool = False
) -> nn.Sequential:
    """The conv part as one flat ``nn.Sequential``: conv, [BN], ReLU, ..., pool.

    Convolutions keep their bias with batch norm too, as torchvision's (key parity).
    """
    layers: list[nn.Module] = []
    for value in config:
        if value == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        assert isinstance(value, int)
        norm = nn.BatchNorm2d if batch_norm else None
        layers += conv_norm_act_layers(in_channels, value, 3, norm_layer=norm, bias=True)
        in_channels = value
    return nn.Sequential(*layers)


def feature_levels(features: nn.Sequential, in_channels: int) -> list[FeatureLevel]:
    """For each resolution of ``features`` its deepest map: the last layer before each
    pool (strides 1, 2, 4, ...), then the last pool."""
    levels = []
    stride, channels = 1, in_channels
    for i, layer in enumerate(features):
        if isinstance(layer, nn.Conv2d):
            channels = layer.out_channels
        elif isinstance(layer, nn.MaxPool2d):
            levels.append(FeatureLevel(f"features.{i - 1}", channels, stride))
            stride *= 2
    last_pool = max(i for i, m in enumerate(features) if isinstance(m, nn.MaxPool2d))
    levels.append(FeatureLevel(f"features.{last_pool}", channels, stride))
    return levels


def forward_pyramid(features: nn.Sequential, x: torch.Tensor) -> list[torch.Tensor]:
    """The maps of :func:`feature_levels`, shallow to deep."""
    pools = [i for i, m in enumerate(features) if isinstance(m, nn.MaxPool2d)]
    taps = {i - 1 for i in pools} | {pools[-1]}
    maps = []
    for i, layer in enumerate(features):
        x = layer(x)
        if i in taps:
            maps.append(x)
    return maps


class VGG(Classifier):
    """``features`` → adaptive average pool to 7x7 → three-layer MLP ``classifier``.

    The 7x7 pool makes any input size of at least 32x32 work; at 224x224 it is the
    identity. ``feature_info`` lists, for each resolution, its deepest map: the last
    ReLU before each pool (strides 1, 2, 4, 8, 16), then the last pool (stride 32).
    """

    def __init__(
        self,
        config: list[int | str],
        num_classes: int = 1000,
        in_channels: int = 3,
        batch_norm: bool = False,
        dropout: float = 0.5,
        init_weights: bool = True,
    ) -> None:
        super().__init__()
        self.features = make_features(config, in_channels, batch_norm)
        self.pool_indices = [i for i, m in enumerate(self.features) if isinstance(m, nn.MaxPool2d)]
        self.feature_info = feature_levels(self.features, in_channels)

        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.num_features = 4096
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes),
        )
        self.num_classes = num_classes
        if init_weights:
            self._init_weights()

    def _init_weights(self) -> None:
        """He-normal convs (fan-out), N(0, 0.01) linears, zero biases, as torchvision."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward_pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        return forward_pyramid(self.features, x)

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


def _vgg(config: str, batch_norm: bool, num_classes: int, in_channels: int, **options) -> VGG:
    return VGG(CONFIGS[config], num_classes, in_channels, batch_norm=batch_norm, **options)


def vgg11(num_classes: int = 1000, in_channels: int = 3, **options) -> VGG:
    return _vgg("A", False, num_classes, in_channels, **options)


def vgg11_bn(num_classes: int = 1000, in_channels: int = 3, **options) -> VGG:
    return _vgg("A", True, num_classes, in_channels, **options)


def vgg13(num_classes: int = 1000, in_channels: int = 3, **options) -> VGG:
    return _vgg("B", False, num_classes, in_channels, **options)


def vgg13_bn(num_classes: int = 1000, in_channels: int = 3, **options) -> VGG:
    return _vgg("B", True, num_classes, in_channels, **options)


def vgg16(num_classes: int = 1000, in_channels: int = 3, **options) -> VGG:
    return _vgg("D", False, num_classes, in_channels, **options)


def vgg16_bn(num_classes: int = 1000, in_channels: int = 3, **options) -> VGG:
    return _vgg("D", True, num_classes, in_channels, **options)


def vgg19(num_classes: int = 1000, in_channels: int = 3, **options) -> VGG:
    return _vgg("E", False, num_classes, in_channels, **options)


def vgg19_bn(num_classes: int = 1000, in_channels: int = 3, **options) -> VGG:
    return _vgg("E", True, num_classes, in_channels, **options)


_INPUT = (3, 224, 224)

MODELS = {
    "vgg11": ModelSpec(vgg11, "classification", _INPUT, "VGG-11 (config A), 132.9M"),
    "vgg11_bn": ModelSpec(vgg11_bn, "classification", _INPUT, "VGG-11 with batch norm, 132.9M"),
    "vgg13": ModelSpec(vgg13, "classification", _INPUT, "VGG-13 (config B), 133.0M"),
    "vgg13_bn": ModelSpec(vgg13_bn, "classification", _INPUT, "VGG-13 with batch norm, 133.1M"),
    "vgg16": ModelSpec(vgg16, "classification", _INPUT, "VGG-16 (config D), 138.4M"),
    "vgg16_bn": ModelSpec(vgg16_bn, "classification", _INPUT, "VGG-16 with batch norm, 138.4M"),
    "vgg19": ModelSpec(vgg19, "classification", _INPUT, "VGG-19 (config E), 143.7M"),
    "vgg19_bn": ModelSpec(vgg19_bn, "classification", _INPUT, "VGG-19 with batch norm, 143.7M"),
}
