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

from . import vgg
from .base import ModelSpec, SegmentationModel
from .encoders import load_encoder_weights
from .layers import conv_norm_act_layers

VGG16_CHANNELS = (64, 128, 256, 512, 512)
VGG16_DEPTHS = (2, 2, 3, 3, 3)


class SegNetEncoder(nn.Module):
    """VGG-BN's convolutions, built by :func:`~pixelwise.models.vgg.make_features`.

    ``features`` has the layout of a VGG-BN classifier's (``vgg16_bn`` for the default
    stages), so that classifier's state dict loads into it with
    :func:`~pixelwise.models.encoders.load_encoder_weights`, which skips the
    classifier's ``avgpool`` and ``classifier``. Its pyramid is VGG's: the map before
    each pooling, then the deepest pooled map.
    """

    def __init__(self, in_channels: int, channels: Sequence[int], depths: Sequence[int]) -> None:
        super().__init__()
        config: list[int | str] = []
        for width, depth in zip(channels, depths):
            config += [width] * depth + ["M"]
        self.features = vgg.make_features(config, in_channels, batch_norm=True)
        self.feature_info = vgg.feature_levels(self.features, in_channels)

    def forward_pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        return vgg.forward_pyramid(self.features, x)


class SegNetDecoder(nn.Module):
    """The encoder mirrored: per stage, unpool then ``depth`` conv-BN-ReLU units.

    Unpooling puts each value back where the encoder's 2x2 pooling found its maximum:
    the indices are those of pooling the map before it (the encoder's pyramid level
    of that stage), which are exactly the encoder's. A stage's last unit maps to the
    channels of the shallower stage, as in the paper's Caffe model; the shallowest
    stage ends in the classifier instead (``SegNet.head``).
    """

    def __init__(self, channels: Sequence[int], depths: Sequence[int]) -> None:
        super().__init__()
        stages = []
        for i in reversed(range(len(channels))):
            width, depth = channels[i], depths[i]
            outs = [width] * (depth - 1) + ([channels[i - 1]] if i > 0 else [])
            layers = [m for out in outs for m in conv_norm_act_layers(width, out, 3, bias=True)]
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = features[-1]
        for stage, before_pool in zip(self.stages, reversed(features[:-1])):
            _, indices = F.max_pool2d(before_pool, 2, 2, return_indices=True)
            x = stage(F.max_unpool2d(x, indices, 2, 2, output_size=before_pool.shape[-2:]))
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

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.encoder.forward_pyramid(self.input_norm(x))

    def pretrained_modules(self) -> list[str]:
        """The encoder (``encoder_weights``: a VGG-BN classifier's); the input norm,
        the decoder and the head start fresh."""
        return ["encoder"]


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
