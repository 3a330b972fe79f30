"""Any classifier as a segmentation encoder, and the base every segmentation model shares.

A segmentation model is encoder → decoder → per-pixel head (the decomposition of
segmentation_models_pytorch). The encoder is a zoo classifier without its head:
``forward_pyramid`` gives its feature maps shallow to deep and ``feature_info`` their
channels and strides, which is all a decoder needs to know, so a new encoder is a new
classifier and a new architecture is a new decoder.

Where SMP demands inputs whose size is a multiple of 32, :class:`SegmentationModel` pads
the input at the bottom and right to a multiple of ``size_divisor`` and crops the logits
back, so any input size works and the logits keep the input's height and width.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .base import Classifier, FeatureLevel
from .weights import adapt_input_channels, read_state_dict

SegmentationOutput = torch.Tensor | dict[str, torch.Tensor]


def output_stride(levels: Classifier | Sequence[FeatureLevel]) -> int:
    """Input pixels per pixel of the deepest level: ``lcm`` of the levels' strides.

    An input whose height and width are multiples of this gives every level exactly
    ``size / stride`` pixels, so upsampled deep features line up with the skips.
    """
    info = levels.feature_info if isinstance(levels, nn.Module) else levels
    return math.lcm(*(level.stride for level in info))


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad the bottom and right of ``x`` so its height and width divide by ``multiple``."""
    height, width = x.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    return F.pad(x, (0, pad_w, 0, pad_h))


def crop_to(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """The top-left ``size`` (height, width) of ``x``: undoes :func:`pad_to_multiple`."""
    return x[..., : size[0], : size[1]]


class SegmentationModel(nn.Module):
    """Base for segmentation models: pad, predict, crop back, pick the output form.

    Subclasses define :meth:`forward_padded`, which sees inputs whose size is a multiple
    of ``size_divisor`` and returns ``(logits, aux_logits or None)`` at that size. The
    output is ``{"out": logits, "aux": aux_logits}`` in training mode when there is an
    auxiliary head, and the logits alone otherwise.
    """

    num_classes: int
    size_divisor: int = 1

    def forward_padded(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> SegmentationOutput:
        size = x.shape[-2:]
        logits, aux = self.forward_padded(pad_to_multiple(x, self.size_divisor))
        logits = crop_to(logits, size)
        if self.training and aux is not None:
            return {"out": logits, "aux": crop_to(aux, size)}
        return logits

    def classifier_module_names(self) -> list[str]:
        """Top-level modules that depend on the class count (skipped by weight loading)."""
        return ["head"]


def as_encoder(classifier: Classifier) -> Classifier:
    """``classifier`` without its head, so that it only computes ``forward_pyramid``.

    Every top-level module holding a head module (``classifier_module_names``: VGG's
    ``classifier.6`` takes all of ``classifier``, fc6 and fc7 with it) becomes
    ``nn.Identity``: its parameters would never get a gradient, and without them the
    state-dict keys are the classifier's own minus the head, as torchvision's
    ``IntermediateLayerGetter`` gives them.
    """
    if not isinstance(classifier, Classifier):
        raise TypeError(
            f"a segmentation encoder must be a pixelwise Classifier (with forward_pyramid "
            f"and feature_info), got {type(classifier).__name__}"
        )
    head = sorted({name.split(".")[0] for name in classifier.classifier_module_names()})
    for name in head:
        setattr(classifier, name, nn.Identity())
    classifier.removed_head = head
    return classifier


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
    from . import create_model, get_spec
    from .base import ModelError

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
    """Load a classifier's state dict (file ``path``) into ``encoder``, ignoring its head.

    A first convolution for another number of input channels is adapted as
    :func:`~pixelwise.models.weights.load_pretrained` does (summed for one channel,
    repeated and rescaled otherwise). Every other key must be present with the same
    shape: weights of another architecture fail, naming the keys that differ.
    """
    from .base import ModelError

    head = tuple(f"{name}." for name in getattr(encoder, "removed_head", ()))
    state = {k: v for k, v in read_state_dict(path).items() if not k.startswith(head)}
    own = encoder.state_dict()
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
