"""Fully convolutional networks (Long, Shelhamer and Darrell, 2015).

A classifier becomes a dense predictor when its fully connected layers are read as
convolutions: VGG16's fc6 (25088 → 4096) is a 7x7 convolution over pool5, fc7 a 1x1
convolution, and a 1x1 ``score_fr`` gives class scores at stride 32. A transposed
convolution initialised to bilinear interpolation (and then learned) upsamples them:

- ``fcn32s``: score_fr upsampled 32x in one step;
- ``fcn16s``: score_fr upsampled 2x plus scores from pool4 (stride 16), then 16x;
- ``fcn8s``: that plus scores from pool3 (stride 8), then 8x.

The skip scorers start at zero (the paper's initialisation), so an FCN-16s begins as
its FCN-32s. Instead of Caffe's 100-pixel padding and crop offsets, the input is padded
to a multiple of 32 and fc6 pads by 3, so every map is exactly ``size / stride`` and
the upsampling ``ConvTranspose2d(k=2f, stride=f, padding=f/2)`` gives exactly ``f``
times its input. fc6 and fc7 take the VGG classifier's weights (reshaped, shared), so
``encoder_weights`` of an ImageNet VGG16 initialise them as in the paper.

In the encoder → decoder → head shape: the encoder is VGG16 without its classifier,
the decoder is fc6 and fc7 (pool5 → fc7, with pool3 and pool4 passed on), and the head
(:class:`SkipScoreHead`) scores fc7, pool4 and pool3 and upsamples: only the head
depends on the class count.

Parameters: the paper's 134M (VGG16's 138M less fc8, plus the scorers) and the
upsampling kernels, ``classes² (2f)²`` each: 1.8M more for FCN-32s with 21 classes.
The paper's reference code keeps those fixed; here they are learned, as its text says
of the 2x ones.

``fcn_resnet50`` and ``fcn_resnet101`` are torchvision's: a ResNet with dilation in its
last two stages (output stride 8), an :class:`FCNHead` on layer4 (and on layer3 with
``aux_loss=True``), logits resized bilinearly to the input. Keys and outputs equal
torchvision's ``fcn_resnet50(weights=None, weights_backbone=None, ...)``: these keep
torchvision's names ``backbone``, ``classifier`` and ``aux_classifier`` for state-dict
parity (:class:`DilatedSegmentationModel`).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .base import Classifier, ModelSpec, SegmentationModel
from .encoders import as_encoder, create_encoder
from .layers import conv_norm_act_layers
from .vgg import vgg16
from .weights import load_pretrained


def bilinear_kernel(channels: int, kernel_size: int) -> torch.Tensor:
    """Weights that make a ``ConvTranspose2d`` upsample each channel bilinearly.

    ``w[c, c, i, j] = (1 - |i - m| / f) (1 - |j - m| / f)`` with ``f = ceil(k / 2)`` and
    ``m`` the kernel's centre; zero between different channels.
    """
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    filt = 1 - (torch.arange(kernel_size, dtype=torch.float32) - center).abs() / factor
    weight = torch.zeros(channels, channels, kernel_size, kernel_size)
    weight[range(channels), range(channels)] = filt[:, None] * filt[None, :]
    return weight


def bilinear_upsampling(channels: int, factor: int) -> nn.ConvTranspose2d:
    """A learnable ``factor``-times upsampling that starts as bilinear interpolation."""
    up = nn.ConvTranspose2d(
        channels, channels, 2 * factor, stride=factor, padding=factor // 2, bias=False
    )
    with torch.no_grad():
        up.weight.copy_(bilinear_kernel(channels, 2 * factor))
    return up


def zero_conv1x1(in_channels: int, out_channels: int) -> nn.Conv2d:
    """A class scorer that starts at zero, so a new skip adds nothing at first."""
    conv = nn.Conv2d(in_channels, out_channels, 1)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


def linear_as_conv(linear: nn.Linear, in_channels: int, kernel_size: int) -> nn.Conv2d:
    """``linear`` read as a ``kernel_size`` convolution, sharing its weights (no copy)."""
    conv = nn.Conv2d(  # on "meta": no memory for the weights it is about to replace
        in_channels, linear.out_features, kernel_size, padding=kernel_size // 2, device="meta"
    )
    conv.weight = nn.Parameter(
        linear.weight.detach().view(linear.out_features, in_channels, kernel_size, kernel_size)
    )
    conv.bias = nn.Parameter(linear.bias.detach())
    return conv


class FullyConnectedAsConv(nn.Module):
    """FCN's decoder: fc6 (7x7) and fc7 (1x1) with ReLU and dropout on pool5.

    It passes pool3 and pool4 (2x2 max-poolings of the encoder's stride-4 and -8
    levels, as VGG's own pools compute them) on to the head with fc7's output.
    """

    def __init__(self, fc6: nn.Conv2d, fc7: nn.Conv2d, dropout: float) -> None:
        super().__init__()
        self.fc6 = nn.Sequential(fc6, nn.ReLU(inplace=True), nn.Dropout(dropout))
        self.fc7 = nn.Sequential(fc7, nn.ReLU(inplace=True), nn.Dropout(dropout))

    def forward(self, features: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        # VGG levels: the maps before pools 1-5 (strides 1-16), then pool5 (stride 32)
        pool3 = F.max_pool2d(features[2], 2, 2)
        pool4 = F.max_pool2d(features[3], 2, 2)
        return pool3, pool4, self.fc7(self.fc6(features[-1]))


class SkipScoreHead(nn.Module):
    """FCN's class scores: fc7 scored (``score_fr``) and upsampled; FCN-16s and -8s add
    the scores of pool4 and pool3 on the way (``stride`` 32, 16 or 8)."""

    def __init__(
        self,
        fc_channels: int,
        pool3_channels: int,
        pool4_channels: int,
        num_classes: int,
        stride: int,
    ) -> None:
        super().__init__()
        self.stride = stride
        self.score_fr = zero_conv1x1(fc_channels, num_classes)
        if stride <= 16:
            self.upscore2 = bilinear_upsampling(num_classes, 2)
            self.score_pool4 = zero_conv1x1(pool4_channels, num_classes)
        if stride == 8:
            self.upscore_pool4 = bilinear_upsampling(num_classes, 2)
            self.score_pool3 = zero_conv1x1(pool3_channels, num_classes)
        self.upscore = bilinear_upsampling(num_classes, stride)

    def forward(self, decoded: tuple[torch.Tensor, ...]) -> torch.Tensor:
        pool3, pool4, fc7 = decoded
        score = self.score_fr(fc7)
        if self.stride <= 16:
            score = self.upscore2(score) + self.score_pool4(pool4)
        if self.stride == 8:
            score = self.upscore_pool4(score) + self.score_pool3(pool3)
        return self.upscore(score)


class FCN(SegmentationModel):
    """FCN-32s, 16s or 8s (``stride``) on a VGG classifier, which becomes the encoder.

    ``fc_channels`` other than 4096 gives freshly initialised, narrower fc6/fc7 (for
    quick experiments); at 4096 they are the VGG classifier's own layers, pretrained
    with it, so the decoder counts among the :meth:`pretrained_modules`.
    """

    size_divisor = 32
    moved_modules = {  # checkpoints saved before the encoder -> decoder -> head shape
        "fc6": "decoder.fc6",
        "fc7": "decoder.fc7",
        "score_fr": "head.score_fr",
        "upscore2": "head.upscore2",
        "score_pool4": "head.score_pool4",
        "upscore_pool4": "head.upscore_pool4",
        "score_pool3": "head.score_pool3",
        "upscore": "head.upscore",
    }

    def __init__(
        self,
        vgg: Classifier,
        num_classes: int = 21,
        stride: int = 8,
        fc_channels: int = 4096,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if stride not in (32, 16, 8):
            raise ValueError(f"FCN: stride must be 32, 16 or 8, got {stride}")
        self.num_classes = num_classes
        channels = [level.channels for level in vgg.feature_info]
        pool5_channels = channels[-1]
        self.fc_from_classifier = fc_channels == 4096
        if self.fc_from_classifier:
            fc6 = linear_as_conv(vgg.classifier[0], pool5_channels, 7)
            fc7 = linear_as_conv(vgg.classifier[3], 4096, 1)
        else:
            fc6 = nn.Conv2d(pool5_channels, fc_channels, 7, padding=3)
            fc7 = nn.Conv2d(fc_channels, fc_channels, 1)
        self.encoder = as_encoder(vgg)
        self.decoder = FullyConnectedAsConv(fc6, fc7, dropout)
        self.head = SkipScoreHead(fc_channels, channels[2], channels[3], num_classes, stride)

    def pretrained_modules(self) -> list[str]:
        """The VGG encoder, and fc6/fc7 when they are its classifier's layers."""
        return ["encoder", "decoder"] if self.fc_from_classifier else ["encoder"]


def _fcn_vgg16(
    stride: int,
    num_classes: int,
    in_channels: int,
    encoder_weights: str | Path | None,
    fc_channels: int,
) -> FCN:
    """FCN on a VGG16 whose weights (with its fc6/fc7) come from ``encoder_weights``."""
    vgg = vgg16(in_channels=in_channels)
    if encoder_weights is not None:  # the whole classifier, before fc6/fc7 leave it
        load_pretrained(vgg, encoder_weights, name="vgg16")
    return FCN(vgg, num_classes, stride, fc_channels)


def fcn32s(
    num_classes: int = 21,
    in_channels: int = 3,
    encoder_weights: str | Path | None = None,
    fc_channels: int = 4096,
) -> FCN:
    """FCN-32s on VGG16; ``encoder_weights``: a vgg16 classifier's state dict."""
    return _fcn_vgg16(32, num_classes, in_channels, encoder_weights, fc_channels)


def fcn16s(
    num_classes: int = 21,
    in_channels: int = 3,
    encoder_weights: str | Path | None = None,
    fc_channels: int = 4096,
) -> FCN:
    """FCN-16s on VGG16: adds the pool4 skip."""
    return _fcn_vgg16(16, num_classes, in_channels, encoder_weights, fc_channels)


def fcn8s(
    num_classes: int = 21,
    in_channels: int = 3,
    encoder_weights: str | Path | None = None,
    fc_channels: int = 4096,
) -> FCN:
    """FCN-8s on VGG16: adds the pool4 and pool3 skips."""
    return _fcn_vgg16(8, num_classes, in_channels, encoder_weights, fc_channels)


class FCNHead(nn.Sequential):
    """torchvision's head: 3x3 conv to a quarter of the channels, BN, ReLU, dropout, 1x1."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        inter_channels = in_channels // 4
        super().__init__(
            *conv_norm_act_layers(in_channels, inter_channels, 3, inplace=False),
            nn.Dropout(0.1),
            nn.Conv2d(inter_channels, num_classes, 1),
        )


class DeepestLevel(nn.Module):
    """The decoder of torchvision's simple segmentation models: the deepest level alone."""

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        return features[-1]


class DilatedSegmentationModel(SegmentationModel):
    """torchvision's ``_SimpleSegmentationModel``: backbone, head, bilinear resize.

    The one exception to the part names, for state-dict parity with torchvision: the
    encoder is registered as ``backbone``, the head as ``classifier`` and the auxiliary
    head as ``aux_classifier`` (``encoder`` and ``head`` read them). The decoder passes
    the deepest level on; ``aux_classifier`` (if any, training mode only) scores the
    level before it. Logits are resized to the input with ``align_corners=False``,
    which handles any input size, so no padding is needed (``size_divisor`` 1) and
    outputs equal torchvision's.
    """

    def __init__(
        self,
        backbone: Classifier,
        classifier: nn.Module,
        aux_classifier: nn.Module | None,
        num_classes: int,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.backbone = backbone
        self.decoder = DeepestLevel()
        self.classifier = classifier
        self.aux_classifier = aux_classifier

    @property
    def encoder(self) -> nn.Module:  # type: ignore[override]
        return self.backbone

    @property
    def head(self) -> nn.Module:  # type: ignore[override]
        return self.classifier

    def forward_aux(self, features: list[torch.Tensor]) -> torch.Tensor | None:
        return None if self.aux_classifier is None else self.aux_classifier(features[-2])

    def classifier_module_names(self) -> list[str]:
        return ["classifier", "aux_classifier"]

    def pretrained_modules(self) -> list[str]:
        """The ResNet backbone (``encoder_weights``: a ResNet classifier's)."""
        return ["backbone"]


def dilated_resnet(name: str, in_channels: int, encoder_weights: str | Path | None) -> Classifier:
    """A ResNet encoder at output stride 8: layer3 and layer4 dilated instead of strided."""
    return create_encoder(
        name, in_channels, encoder_weights, replace_stride_with_dilation=[False, True, True]
    )


def _fcn_resnet(
    name: str,
    num_classes: int,
    in_channels: int,
    aux_loss: bool,
    encoder_weights: str | Path | None,
) -> DilatedSegmentationModel:
    backbone = dilated_resnet(name, in_channels, encoder_weights)
    channels = [level.channels for level in backbone.feature_info]
    aux = FCNHead(channels[-2], num_classes) if aux_loss else None
    return DilatedSegmentationModel(backbone, FCNHead(channels[-1], num_classes), aux, num_classes)


def fcn_resnet50(
    num_classes: int = 21,
    in_channels: int = 3,
    aux_loss: bool = False,
    encoder_weights: str | Path | None = None,
) -> DilatedSegmentationModel:
    """torchvision's FCN-ResNet50 (35.3M parameters with ``aux_loss``, 21 classes)."""
    return _fcn_resnet("resnet50", num_classes, in_channels, aux_loss, encoder_weights)


def fcn_resnet101(
    num_classes: int = 21,
    in_channels: int = 3,
    aux_loss: bool = False,
    encoder_weights: str | Path | None = None,
) -> DilatedSegmentationModel:
    """torchvision's FCN-ResNet101 (54.3M parameters with ``aux_loss``, 21 classes)."""
    return _fcn_resnet("resnet101", num_classes, in_channels, aux_loss, encoder_weights)


_VOC = (3, 512, 512)

MODELS = {
    "fcn32s": ModelSpec(fcn32s, "segmentation", _VOC, "FCN-32s on VGG16"),
    "fcn16s": ModelSpec(fcn16s, "segmentation", _VOC, "FCN-16s on VGG16 (pool4 skip)"),
    "fcn8s": ModelSpec(fcn8s, "segmentation", _VOC, "FCN-8s on VGG16 (pool4 and pool3 skips)"),
    "fcn_resnet50": ModelSpec(
        fcn_resnet50, "segmentation", _VOC, "FCN head on dilated ResNet-50 (torchvision)"
    ),
    "fcn_resnet101": ModelSpec(
        fcn_resnet101, "segmentation", _VOC, "FCN head on dilated ResNet-101 (torchvision)"
    ),
}
