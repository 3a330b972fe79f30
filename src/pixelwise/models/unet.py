"""U-Net (Ronneberger, Fischer and Brox, 2015) and the U-Net decoder on any zoo encoder.

A contracting path of double 3x3 convolutions and 2x2 max-poolings, an expanding path
of 2x2 up-convolutions, and skip connections that concatenate each contracting stage
onto the expanding stage of the same resolution.

- ``unet_original`` is the paper's network: unpadded convolutions lose 2 pixels a side
  per convolution, so a 572x572 input gives 388x388 logits, the skips are centre-cropped
  before concatenation, and every pooling must see an even size
  (:func:`unpadded_unet_size` gives the output size and the crop for an input size).
- ``unet`` pads its convolutions (and adds BatchNorm), so the logits keep the input
  size; 64 base channels give about 31.0M parameters.
- ``unet(encoder="resnet34")`` keeps the decoder idea on a zoo classifier: each block
  upsamples to the next shallower level of the encoder's ``feature_info``, concatenates
  it and applies two conv-BN-ReLU units; blocks without a skip bring it to full size.

In the encoder → decoder → head shape: the paper's network is a
:class:`ContractingPath`, an :class:`ExpandingPath` and a 1x1 convolution; on a zoo
encoder, the classifier without its head, a :class:`UNetDecoder` and a 3x3 convolution.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .base import Classifier, FeatureLevel, ModelSpec, SegmentationModel
from .encoders import create_encoder, output_stride
from .layers import conv_norm_act_layers


def double_conv(
    in_channels: int, out_channels: int, padding: int, batch_norm: bool
) -> nn.Sequential:
    """Two 3x3 convolutions with ReLU (and BatchNorm): the unit of every U-Net stage.

    Flat (``0`` conv, ``1`` BN, ``2`` ReLU, ``3`` conv, ...), the keys of earlier
    checkpoints.
    """
    norm = nn.BatchNorm2d if batch_norm else None
    return nn.Sequential(
        *conv_norm_act_layers(in_channels, out_channels, 3, padding=padding, norm_layer=norm),
        *conv_norm_act_layers(out_channels, out_channels, 3, padding=padding, norm_layer=norm),
    )


def center_crop(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """The central ``size`` window of ``x``: the paper's crop of the skip connection."""
    top = (x.shape[-2] - size[0]) // 2
    left = (x.shape[-1] - size[1]) // 2
    return x[..., top : top + size[0], left : left + size[1]]


def unpadded_unet_size(input_size: int, depth: int = 4) -> tuple[int, int]:
    """Output size and crop per side of the unpadded U-Net, for one input dimension.

    Each unpadded 3x3 convolution loses 2 pixels: going down a stage maps
    ``s -> (s - 4) / 2``, the bottom ``s -> s - 4`` and going up ``s -> 2 s - 4``. With
    ``S = 2**depth`` and ``b`` the bottom's output size this gives

        input = S b + 4 (2 S - 1),    output = S b - 4 (S - 1),

    so 572 gives 388 and a crop of 92 pixels a side. Other sizes would pool an odd
    size (the paper requires even ones) or leave nothing; they raise, naming the
    nearest valid sizes.
    """
    scale = 2**depth
    bottom, rest = divmod(input_size - 4 * (2 * scale - 1), scale)
    output = scale * bottom - 4 * (scale - 1)
    if rest or output <= 0:
        raise ValueError(
            f"unpadded U-Net (depth {depth}): input size {input_size} is not valid; "
            f"valid sizes near it: {', '.join(map(str, _valid_sizes_near(input_size, depth)))}"
        )
    return output, (input_size - output) // 2


def _valid_sizes_near(size: int, depth: int) -> list[int]:
    scale = 2**depth
    smallest = 4 * (scale - 1) // scale + 1  # bottom size giving one output pixel or more
    bottom = max(smallest + 1, round((size - 4 * (2 * scale - 1)) / scale))
    return [scale * b + 4 * (2 * scale - 1) for b in (bottom - 1, bottom, bottom + 1)]


class ContractingPath(nn.Module):
    """The paper's encoder: double convolutions, a 2x2 max-pooling between stages.

    Its pyramid is every stage's output (strides 1, 2, ..., ``2**depth``). Unpadded
    (``padding=False``) it checks that the input size is one the paper's network takes.
    """

    def __init__(
        self, in_channels: int, widths: Sequence[int], padding: bool, batch_norm: bool
    ) -> None:
        super().__init__()
        self.padded = padding
        pad = 1 if padding else 0
        self.stages = nn.ModuleList()
        for width in widths:
            self.stages.append(double_conv(in_channels, width, pad, batch_norm))
            in_channels = width
        self.feature_info = [
            FeatureLevel(f"stages.{i}", width, 2**i) for i, width in enumerate(widths)
        ]

    def forward_pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        if not self.padded:
            depth = len(self.stages) - 1
            unpadded_unet_size(x.shape[-2], depth)
            unpadded_unet_size(x.shape[-1], depth)
        features = []
        for i, stage in enumerate(self.stages):
            x = stage(x if i == 0 else F.max_pool2d(x, 2))
            features.append(x)
        return features


class ExpandingPath(nn.Module):
    """The paper's decoder: per level, a 2x2 up-convolution, the (centre-cropped) skip
    concatenated, a double convolution."""

    def __init__(self, widths: Sequence[int], padding: bool, batch_norm: bool) -> None:
        super().__init__()
        pad = 1 if padding else 0
        self.upconvs = nn.ModuleList()
        self.stages = nn.ModuleList()
        for c_in, c_out in zip(widths[:0:-1], widths[-2::-1]):
            self.upconvs.append(nn.ConvTranspose2d(c_in, c_out, 2, stride=2))
            self.stages.append(double_conv(2 * c_out, c_out, pad, batch_norm))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = features[-1]
        for upconv, stage, skip in zip(self.upconvs, self.stages, features[-2::-1]):
            x = upconv(x)
            x = stage(torch.cat([center_crop(skip, x.shape[-2:]), x], dim=1))
        return x


class UNet(SegmentationModel):
    """The paper's U-Net; ``padding=False`` is the original, ``True`` keeps the size."""

    moved_modules = {  # checkpoints saved before the encoder -> decoder -> head shape
        "down": "encoder.stages",
        "upconvs": "decoder.upconvs",
        "up": "decoder.stages",
    }

    def __init__(
        self,
        num_classes: int = 2,
        in_channels: int = 3,
        base_channels: int = 64,
        depth: int = 4,
        padding: bool = True,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.size_divisor = 2**depth if padding else 1
        self.keeps_input_size = padding  # unpadded: logits for the centre of the input
        widths = [base_channels * 2**i for i in range(depth + 1)]
        self.encoder = ContractingPath(in_channels, widths, padding, batch_norm)
        self.decoder = ExpandingPath(widths, padding, batch_norm)
        self.head = nn.Conv2d(widths[0], num_classes, 1)


class UNetDecoderBlock(nn.Module):
    """Upsample (nearest) to the skip's size, concatenate it, two conv-BN-ReLU units."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.convs = double_conv(in_channels + skip_channels, out_channels, 1, batch_norm=True)

    def forward(
        self, x: torch.Tensor, skip: torch.Tensor | None, size: Sequence[int]
    ) -> torch.Tensor:
        x = F.interpolate(x, size=size, mode="nearest")
        return self.convs(x if skip is None else torch.cat([x, skip], dim=1))


class UNetDecoder(nn.Module):
    """U-Net decoder on an encoder's levels: one block per shallower level, then blocks
    without a skip that double the size, up to the input's resolution.

    The number of blocks without a skip is ``log2`` of the shallowest level's stride
    (2 for a ResNet whose shallowest level is stride 4). Widths default to SMP's
    halving sequence ``256, 128, 64, ...`` (at least 16).
    """

    def __init__(
        self, levels: Sequence[FeatureLevel], decoder_channels: Sequence[int] | None = None
    ) -> None:
        super().__init__()
        skip_channels = [level.channels for level in levels[-2::-1]]
        self.extra_blocks = max(0, round(math.log2(levels[0].stride)))
        skip_channels += [0] * self.extra_blocks
        if decoder_channels is None:
            decoder_channels = [max(16, 256 >> i) for i in range(len(skip_channels))]
        if len(decoder_channels) != len(skip_channels):
            raise ValueError(
                f"U-Net decoder: needs {len(skip_channels)} decoder_channels ({len(levels) - 1} "
                f"skips + {self.extra_blocks} upsamplings), got {len(decoder_channels)}"
            )
        self.out_channels = decoder_channels[-1]
        in_channels = [levels[-1].channels, *decoder_channels[:-1]]
        self.blocks = nn.ModuleList(
            UNetDecoderBlock(c_in, c_skip, c_out)
            for c_in, c_skip, c_out in zip(in_channels, skip_channels, decoder_channels)
        )

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        skips = features[-2::-1]
        x = features[-1]
        for i, block in enumerate(self.blocks):
            if i < len(skips):
                x = block(x, skips[i], skips[i].shape[-2:])
            else:  # no skip left: double the size
                x = block(x, None, [2 * x.shape[-2], 2 * x.shape[-1]])
        return x


class EncoderUNet(SegmentationModel):
    """U-Net decoder on a zoo encoder, a 3x3 convolution to class scores.

    The encoder is pretrained (``encoder_weights``); decoder and head are new. Logits
    that do not reach the input's size (an encoder whose shallowest stride is not a
    power of two) are resized bilinearly to it.
    """

    moved_modules = {"blocks": "decoder.blocks"}  # checkpoints saved before this shape

    def __init__(
        self,
        encoder: Classifier,
        num_classes: int = 21,
        decoder_channels: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.size_divisor = output_stride(encoder)
        self.encoder = encoder
        self.decoder = UNetDecoder(encoder.feature_info, decoder_channels)
        self.head = nn.Conv2d(self.decoder.out_channels, num_classes, 3, padding=1)

    def pretrained_modules(self) -> list[str]:
        return ["encoder"]


def unet(
    num_classes: int = 2,
    in_channels: int = 3,
    base_channels: int = 64,
    encoder: str | Classifier | None = None,
    encoder_weights: str | Path | None = None,
    decoder_channels: Sequence[int] | None = None,
    **encoder_kwargs: Any,
) -> SegmentationModel:
    """Padded U-Net (31.0M parameters at ``base_channels=64``), or the U-Net decoder on
    ``encoder``: any classifier name of the zoo or a classifier instance."""
    if encoder is None:
        if encoder_weights is not None or encoder_kwargs:
            raise ValueError("unet: encoder_weights and encoder options need an encoder=...")
        return UNet(num_classes, in_channels, base_channels, padding=True, batch_norm=True)
    backbone = create_encoder(encoder, in_channels, encoder_weights, **encoder_kwargs)
    return EncoderUNet(backbone, num_classes, decoder_channels)


def unet_original(
    num_classes: int = 2, in_channels: int = 3, base_channels: int = 64, depth: int = 4
) -> UNet:
    """The paper's unpadded U-Net without BatchNorm: 572x572 in, 388x388 out."""
    return UNet(num_classes, in_channels, base_channels, depth, padding=False, batch_norm=False)


MODELS = {
    "unet": ModelSpec(
        unet, "segmentation", (3, 256, 256), "U-Net, padded (or encoder=<classifier name>)"
    ),
    "unet_original": ModelSpec(
        unet_original, "segmentation", (3, 572, 572), "U-Net as in the paper: unpadded, 572 -> 388"
    ),
}
