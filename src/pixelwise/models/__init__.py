"""Model zoo: ``create_model(name, ...)`` and ``list_models(task)``.

Each family file exposes ``MODELS``, a dict from name to :class:`ModelSpec`; this
module registers them in :mod:`.registry`. Adding a family is one import and one
entry in ``_FAMILIES``.
"""

from __future__ import annotations

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
from .base import (
    Classifier,
    FeatureLevel,
    ModelError,
    ModelSpec,
    SegmentationModel,
    split_output,
)
from .registry import MODELS, create_model, get_spec, list_models, register

_FAMILIES = [simple, alexnet, vgg, resnet, fastnet, googlenet, mobilenet, shufflenet, vit]
_FAMILIES += [fcn, segnet, unet, deeplab]  # segmentation

for _family in _FAMILIES:
    register(_family.MODELS)


__all__ = [
    "Classifier",
    "FeatureLevel",
    "MODELS",
    "ModelError",
    "ModelSpec",
    "SegmentationModel",
    "create_model",
    "get_spec",
    "list_models",
    "split_output",
]
