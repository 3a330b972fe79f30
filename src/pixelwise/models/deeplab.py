"""DeepLabV3 (Chen, Papandreou, Schroff and Adam, 2017): atrous spatial pyramid pooling.

The encoder is a ResNet whose last two stages trade their stride for dilation (output
stride 8), so the deepest map keeps detail while the receptive field still grows. On it,
ASPP looks at several scales at once: a 1x1 convolution, three 3x3 convolutions with
dilation 12, 24 and 36, and the image-level average (pooled, 1x1 conv, broadcast back);
their 5 x 256 channels are concatenated and projected to 256. A 3x3 conv-BN-ReLU and a
1x1 classifier follow, and the logits are resized bilinearly to the input.

Layout, parameter count and outputs equal torchvision's
``deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=..., aux_loss=...)``
(and ``_resnet101``), so its state dicts load unchanged; ``aux_loss=True`` adds the same
:class:`~pixelwise.models.fcn.FCNHead` on layer3 as torchvision's.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .base import ModelSpec
from .fcn import DilatedSegmentationModel, FCNHead, dilated_resnet
from .layers import ConvNormAct, conv_norm_act_layers


class ASPPPooling(nn.Sequential):
    """Image-level features: global average, 1x1 conv-BN-ReLU, broadcast to the map's size."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.AdaptiveAvgPool2d(1),
            *conv_norm_act_layers(in_channels, out_channels, 1, inplace=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        return F.interpolate(super().forward(x), size=size, mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    """A 1x1 branch, one dilated 3x3 branch per rate and the pooling branch, projected."""

    def __init__(
        self, in_channels: int, atrous_rates: Sequence[int], out_channels: int = 256
    ) -> None:
        super().__init__()
        # each branch a conv-BN-ReLU Sequential: torchvision's keys convs.<i>.0, convs.<i>.1
        branches: list[nn.Module] = [ConvNormAct(in_channels, out_channels, 1, inplace=False)]
        branches += [
            ConvNormAct(in_channels, out_channels, 3, dilation=rate, inplace=False)
            for rate in atrous_rates
        ]
        branches.append(ASPPPooling(in_channels, out_channels))
        self.convs = nn.ModuleList(branches)
        self.project = nn.Sequential(
            *conv_norm_act_layers(len(branches) * out_channels, out_channels, 1, inplace=False),
            nn.Dropout(0.5),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([branch(x) for branch in self.convs], dim=1))


class DeepLabHead(nn.Sequential):
    """ASPP, a 3x3 conv-BN-ReLU and the 1x1 classifier (torchvision's indices 0-4)."""

    def __init__(
        self, in_channels: int, num_classes: int, atrous_rates: Sequence[int] = (12, 24, 36)
    ) -> None:
        super().__init__(
            ASPP(in_channels, atrous_rates),
            *conv_norm_act_layers(256, 256, 3, inplace=False),
            nn.Conv2d(256, num_classes, 1),
        )


def _deeplabv3_resnet(
    name: str,
    num_classes: int,
    in_channels: int,
    aux_loss: bool,
    encoder_weights: str | Path | None,
    atrous_rates: Sequence[int],
) -> DilatedSegmentationModel:
    backbone = dilated_resnet(name, in_channels, encoder_weights)
    channels = [level.channels for level in backbone.feature_info]
    aux = FCNHead(channels[-2], num_classes) if aux_loss else None
    head = DeepLabHead(channels[-1], num_classes, atrous_rates)
    return DilatedSegmentationModel(backbone, head, aux, num_classes)


def deeplabv3_resnet50(
    num_classes: int = 21,
    in_channels: int = 3,
    aux_loss: bool = False,
    encoder_weights: str | Path | None = None,
    atrous_rates: Sequence[int] = (12, 24, 36),
) -> DilatedSegmentationModel:
    """torchvision's DeepLabV3-ResNet50 (42.0M parameters with ``aux_loss``, 21 classes)."""
    return _deeplabv3_resnet(
        "resnet50", num_classes, in_channels, aux_loss, encoder_weights, atrous_rates
    )


def deeplabv3_resnet101(
    num_classes: int = 21,
    in_channels: int = 3,
    aux_loss: bool = False,
    encoder_weights: str | Path | None = None,
    atrous_rates: Sequence[int] = (12, 24, 36),
) -> DilatedSegmentationModel:
    """torchvision's DeepLabV3-ResNet101 (61.0M parameters with ``aux_loss``, 21 classes)."""
    return _deeplabv3_resnet(
        "resnet101", num_classes, in_channels, aux_loss, encoder_weights, atrous_rates
    )


MODELS = {
    "deeplabv3_resnet50": ModelSpec(
        deeplabv3_resnet50, "segmentation", (3, 512, 512), "DeepLabV3 (ASPP) on dilated ResNet-50"
    ),
    "deeplabv3_resnet101": ModelSpec(
        deeplabv3_resnet101, "segmentation", (3, 512, 512), "DeepLabV3 (ASPP) on dilated ResNet-101"
    ),
}
