"""The model registry: names to :class:`ModelSpec`, ``create_model`` and ``list_models``.

It imports no model family, so families (and ``encoders.create_encoder``, which builds a
zoo classifier by name) can use it without an import cycle. ``pixelwise.models``
imports every family and fills :data:`MODELS` with :func:`register`.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from torch import nn

from ..plugins import import_class, is_import_path
from .base import ModelError, ModelSpec
from .weights import load_pretrained

MODELS: dict[str, ModelSpec] = {}


def register(models: dict[str, ModelSpec]) -> None:
    """Add a family's ``MODELS``; a name registered twice is a bug."""
    taken = sorted(set(models) & set(MODELS))
    if taken:
        raise ValueError(f"model names registered twice: {taken}")
    MODELS.update(models)


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
    if is_import_path(name):  # a model class of the user's: package.module:ClassName
        return create_imported_model(name, num_classes, in_channels, weights, **kwargs)
    spec = get_spec(name)
    options = {**spec.defaults, **kwargs}
    if num_classes is not None:
        options["num_classes"] = num_classes
    try:
        model = spec.builder(in_channels=in_channels, **options)
    except TypeError as err:
        raise ModelError(f"model '{name}': {err}") from err
    if weights is not None:
        load_pretrained(model, weights, name=name)
        if new_classifier:
            model.reset_classifier(model.num_classes)
    return model


def create_imported_model(
    path: str,
    num_classes: int | None,
    in_channels: int,
    weights: str | Path | None = None,
    **options: Any,
) -> nn.Module:
    """``Class(num_classes=..., in_channels=..., **options)`` for an ``nn.Module`` class
    named by import path (``model.name: mypackage.models:TinyNet``)."""
    cls = import_class(path, "model.name", nn.Module)
    if num_classes is not None:
        options["num_classes"] = num_classes
    try:
        model = cls(in_channels=in_channels, **options)
    except TypeError as err:
        raise ModelError(
            f"model.name={path}: {err} (a model class takes num_classes and in_channels "
            "keywords, and model.options)"
        ) from err
    if weights is not None:
        load_pretrained(model, weights, name=path)
    return model
