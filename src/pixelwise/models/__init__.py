"""Model zoo: ``create_model(name, ...)`` and ``list_models(task)``.

Each family file exposes ``MODELS``, a dict from name to :class:`ModelSpec`; this
module merges them. Adding a family is one import and one entry in ``_FAMILIES``.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from torch import nn

from . import (
    alexnet,
    deeplab,
    fastnet,
    fcn,
    googlenet,
    mobilenet,
    resnet,
    segnet,
    shufflenet,
    simple,
    unet,
    vgg,
    vit,
)
from .base import Classifier, FeatureLevel, ModelError, ModelSpec, split_output

_FAMILIES = [simple, alexnet, vgg, resnet, fastnet, googlenet, mobilenet, shufflenet, vit]
_FAMILIES += [fcn, segnet, unet, deeplab]  # segmentation

MODELS: dict[str, ModelSpec] = {}
for _family in _FAMILIES:
    MODELS.update(_family.MODELS)


def list_models(task: str | None = None) -> list[str]:
    """Model names, optionally only those of one task ('classification' or 'segmentation')."""
    return sorted(name for name, spec in MODELS.items() if task is None or spec.task == task)


def get_spec(name: str) -> ModelSpec:
    if name not in MODELS:
        near = difflib.get_close_matches(name, list(MODELS), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        raise ModelError(f"unknown model '{name}'{hint} (see `pixelwise models`)")
    return MODELS[name]


def create_model(
    name: str,
    num_classes: int | None = None,
    in_channels: int = 3,
    weights: str | Path | None = None,
    new_classifier: bool = False,
    **kwargs: Any,
) -> nn.Module:
    """Build model ``name``; ``weights`` is a state-dict file (torchvision's or ours).

    ``new_classifier=True`` starts a fresh head after loading even when the class count
    matches: transfer to other classes of the same number.
    """
    spec = get_spec(name)
    options = {**spec.defaults, **kwargs}
    if num_classes is not None:
        options["num_classes"] = num_classes
    try:
        model = spec.builder(in_channels=in_channels, **options)
    except TypeError as err:
        raise ModelError(f"model '{name}': {err}") from err
    if weights is not None:
        from .weights import load_pretrained

        load_pretrained(model, weights, name=name)
        if new_classifier:
            model.reset_classifier(model.num_classes)
    return model


__all__ = [
    "Classifier",
    "FeatureLevel",
    "MODELS",
    "ModelError",
    "ModelSpec",
    "create_model",
    "get_spec",
    "list_models",
    "split_output",
]
