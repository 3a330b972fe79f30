"""SegNet (Badrinarayanan, Kendall and Cipolla, 2017): pooling indices drive the decoder.

The encoder is VGG16-BN's 13 convolutions. Each max-pooling remembers where its
maxima were; the matching decoder stage puts every value back at that position
(max-unpooling, the rest zero) and convolutions densify the sparse map. Compared with
FCN or U-Net nothing but the indices crosses from encoder to decoder, so the decoder
needs no upsampling weights and little memory. ``segnet`` has about 29.4M parameters:
14.7M in the encoder, a mirrored decoder of the same size and a 3x3 classifier.

The encoder's ``features`` has the layout of torchvision's ``vgg16_bn.features`` (and
our ``vgg16_bn``'s), so ``encoder_weights`` takes that classifier's state dict.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .base import ModelSpec
from .encoders import SegmentationModel, load_encoder_weights

VGG16_CHANNELS = (64, 128, 256, 512, 512)
VGG16_DEPTHS = (2, 2, 3, 3, 3)


def conv_bn_relu(in_channels: int, out_channels: int) -> list[nn.Module]:
    """VGG-BN's unit as three flat modules, so keys read ``features.0``, ``features.1``."""
    return [
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]


class SegNetEncoder(nn.Module):
    """VGG-BN convolutions whose max-poolings also return their indices and input sizes."""

    removed_head = ("avgpool", "classifier")  # a VGG classifier's keys that have no place here

    def __init__(self, in_channels: int, channels: Sequence[int], depths: Sequence[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for width, depth in zip(channels, depths):
            for _ in range(depth):
                layers += conv_bn_relu(in_channels, width)
                in_channels = width
            layers.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*layers)

    def forward(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Size]]]:
        """The deepest map and, per stage, the pooling indices and the size before pooling."""
        pools = []
        for layer in self.features:
            if isinstance(layer, nn.MaxPool2d):
                size = x.shape[-2:]
                x, indices = F.max_pool2d(x, 2, 2, return_indices=True)
                pools.append((indices, size))
            else:
                x = layer(x)
        return x, pools


class SegNetDecoder(nn.Module):
    """The encoder mirrored: per stage, unpool then ``depth`` conv-BN-ReLU units.

    A stage's last unit maps to the channels of the shallower stage, as in the paper's
    Caffe model; the shallowest stage ends in the classifier instead (``SegNet.head``).
    """

    def __init__(self, channels: Sequence[int], depths: Sequence[int]) -> None:
        super().__init__()
        stages = []
        for i in reversed(range(len(channels))):
            width, depth = channels[i], depths[i]
            out = channels[i - 1] if i > 0 else width
            units = [conv_bn_relu(width, width) for _ in range(depth - 1)]
            if i > 0:
                units.append(conv_bn_relu(width, out))
            stages.append(nn.Sequential(*[m for unit in units for m in unit]))
        self.stages = nn.ModuleList(stages)

    def forward(
        self, x: torch.Tensor, pools: list[tuple[torch.Tensor, torch.Size]]
    ) -> torch.Tensor:
        for stage, (indices, size) in zip(self.stages, reversed(pools)):
            x = stage(F.max_unpool2d(x, indices, 2, 2, output_size=size))
        return x


class SegNet(SegmentationModel):
    """Encoder, index-driven decoder and a 3x3 convolution to per-pixel class scores.

    ``input_norm=True`` makes a BatchNorm the first layer, which learns the input's
    mean and scale instead of relying on the data pipeline's normalisation.
    """

    def __init__(
        self,
        num_classes: int = 21,
        in_channels: int = 3,
        channels: Sequence[int] = VGG16_CHANNELS,
        depths: Sequence[int] = VGG16_DEPTHS,
        input_norm: bool = False,
    ) -> None:
        super().__init__()
        if len(channels) != len(depths):
            raise ValueError(f"SegNet: {len(channels)} stage channels but {len(depths)} depths")
        self.num_classes = num_classes
        self.size_divisor = 2 ** len(channels)  # every pooling sees an even size
        self.input_norm = nn.BatchNorm2d(in_channels) if input_norm else nn.Identity()
        self.encoder = SegNetEncoder(in_channels, channels, depths)
        self.decoder = SegNetDecoder(channels, depths)
        self.head = nn.Conv2d(channels[0], num_classes, 3, padding=1)

    def forward_padded(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        x, pools = self.encoder(self.input_norm(x))
        return self.head(self.decoder(x, pools)), None


def segnet(
    num_classes: int = 21,
    in_channels: int = 3,
    input_norm: bool = False,
    encoder_weights: str | Path | None = None,
) -> SegNet:
    """SegNet on VGG16-BN (29.4M parameters); ``encoder_weights``: a vgg16_bn state dict."""
    model = SegNet(num_classes, in_channels, input_norm=input_norm)
    if encoder_weights is not None:
        load_encoder_weights(model.encoder, encoder_weights)
    return model


def segnet_compact(
    num_classes: int = 21,
    in_channels: int = 3,
    channels: Sequence[int] = (16, 32, 64, 128),
    depths: Sequence[int] = (2, 2, 3, 3),
    input_norm: bool = False,
) -> SegNet:
    """Four narrow stages (about 1M parameters, output stride 16) for small inputs."""
    return SegNet(num_classes, in_channels, channels, depths, input_norm)


MODELS = {
    "segnet": ModelSpec(
        segnet, "segmentation", (3, 360, 480), "SegNet: VGG16-BN encoder, max-unpooling decoder"
    ),
    "segnet_compact": ModelSpec(
        segnet_compact, "segmentation", (3, 64, 64), "SegNet with 4 narrow stages, for small inputs"
    ),
}
