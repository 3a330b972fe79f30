"""Any classifier as a segmentation encoder.

A segmentation model is encoder → decoder → per-pixel head
(:class:`~pixelwise.models.base.SegmentationModel`). The encoder is a zoo classifier
without its head: ``forward_pyramid`` gives its feature maps shallow to deep and
``feature_info`` their channels and strides, which is all a decoder needs to know, so
a new encoder is a new classifier and a new architecture is a new decoder.

:func:`as_encoder` is the one way a classifier becomes an encoder: it deletes the
head's top-level modules and records their names in ``dropped_head``. The encoder keeps
the classifier's state-dict keys minus the head, as torchvision's
``IntermediateLayerGetter`` does, so a classifier's weights load into it with
:func:`load_encoder_weights`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from ..checkpoint import read_state_dict
from ..log import logger
from .base import Classifier, FeatureLevel, ModelError, as_encoder
from .registry import create_model, get_spec
from .weights import adapt_input_channels


def output_stride(levels: nn.Module | Sequence[FeatureLevel]) -> int:
    """Input pixels per pixel of the deepest level: ``lcm`` of the levels' strides.

    An input whose height and width are multiples of this gives every level exactly
    ``size / stride`` pixels, so upsampled deep features line up with the skips.
    """
    info = levels.feature_info if isinstance(levels, nn.Module) else levels
    return math.lcm(*(level.stride for level in info))


def create_encoder(
    encoder: str | Classifier,
    in_channels: int = 3,
    weights: str | Path | None = None,
    **kwargs: Any,
) -> Classifier:
    """An encoder from a zoo classifier name (``"resnet34"``) or a classifier instance.

    ``kwargs`` go to the classifier's builder (e.g. ``replace_stride_with_dilation``);
    ``weights`` is a classifier state-dict file loaded into the encoder.
    """
    if isinstance(encoder, str):
        spec = get_spec(encoder)
        if spec.task != "classification":
            raise ModelError(f"encoder '{encoder}' is a {spec.task} model; use a classifier")
        encoder = create_model(encoder, in_channels=in_channels, **kwargs)
    elif kwargs:
        raise ModelError(f"encoder options {sorted(kwargs)} need an encoder name, not a model")
    encoder = as_encoder(encoder)
    if weights is not None:
        load_encoder_weights(encoder, weights)
    return encoder


def load_encoder_weights(encoder: nn.Module, path: str | Path) -> None:
    """Load a classifier's state dict (file ``path``) into ``encoder``, without its head.

    The encoder takes the entries under its own top-level modules; the classifier's
    other top-level modules are its head: what :func:`as_encoder` dropped
    (``dropped_head``), or, for a trunk built to a classifier's layout (SegNet's
    VGG16-BN ``features``), everything but that trunk. They are skipped and logged.
    A first convolution for another number of input channels is adapted as
    :func:`~pixelwise.models.weights.load_pretrained` does (summed for one channel,
    repeated and rescaled otherwise). Every entry of the encoder must be present with
    its shape: weights of another architecture fail, naming the keys that differ.
    """
    own = encoder.state_dict()
    kept = {key.split(".")[0] for key in own}
    state, skipped = {}, set()
    for key, value in read_state_dict(path).items():
        if key.split(".")[0] in kept:
            state[key] = value
        else:
            skipped.add(key.split(".")[0])
    wrong = []
    for key, value in state.items():
        if key not in own or own[key].shape == value.shape:
            continue
        target = own[key].shape
        if value.ndim == 4 and value.shape[0] == target[0] and value.shape[2:] == target[2:]:
            state[key] = adapt_input_channels(value, target[1])
        else:
            wrong.append(f"{key} {tuple(value.shape)} vs {tuple(target)}")
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if wrong or missing or unexpected:
        raise ModelError(
            f"encoder weights {path} do not fit {type(encoder).__name__}: "
            f"{len(wrong)} shapes differ (e.g. {wrong[:2]}), "
            f"{len(missing)} keys missing (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})"
        )
    encoder.load_state_dict(state)
    if skipped:
        logger.info(f"encoder weights {path}: skipped the head {', '.join(sorted(skipped))}")
