"""The model registry: names to :class:`ModelSpec`, ``create_model`` and ``list_models``.

It imports no model family, so families (and ``encoders.create_encoder``, which builds a
zoo classifier by name) can use it without an import cycle. ``pixelwise.models``
imports every family and fills :data:`MODELS` with :func:`register`.
"""

from __future__ import annotations

import difflib
import fnmatch
from pathlib import Path
from typing import Any, get_args

from torch import nn

from ..plugins import import_class, is_import_path
from .base import FeaturePyramid, ModelError, ModelSpec, Task
from .weights import load_pretrained

MODELS: dict[str, ModelSpec] = {}


def register(models: dict[str, ModelSpec]) -> None:
    """Add a family's ``MODELS``; a name registered twice is a bug."""
    taken = sorted(set(models) & set(MODELS))
    if taken:
        raise ValueError(f"model names registered twice: {taken}")
    MODELS.update(models)


TASKS: tuple[str, ...] = get_args(Task)


def list_models(
    pattern: str | None = None, task: str | None = None, pretrained: bool = False
) -> list[str]:
    """Model names matching a shell-style ``pattern`` (``"resnet*"``, ``"*unet*"``; every
    name by default), optionally only those of one ``task``, as timm's ``list_models``.

    A task name in place of the pattern (``list_models("segmentation")``) filters by task,
    as it always has. ``pretrained=True`` keeps the models torchvision publishes weights
    for (``model.weights=torchvision``, from the local cache). Refused with a ``ModelError``: an unknown task, and a name without
    wildcards that names no model (a typo there would otherwise list nothing, silently).
    """
    if pattern in TASKS and task is None:
        pattern, task = None, pattern
    if task is not None and task not in TASKS:
        raise ModelError(f"unknown task {task!r}; tasks are: {', '.join(TASKS)}")
    if pattern is not None and not any(c in pattern for c in "*?[") and pattern not in MODELS:
        raise ModelError(f"no model is named {pattern!r}{_name_hint(pattern)}")
    return sorted(
        name
        for name, spec in MODELS.items()
        if (task is None or spec.task == task)
        and (pattern is None or fnmatch.fnmatchcase(name, pattern))
        and (not pretrained or has_torchvision_weights(name))
    )


def has_torchvision_weights(name: str) -> bool:
    """Whether torchvision publishes weights under this name (no download: its registry)."""
    import torchvision  # only here: torchvision's weight registry

    try:
        torchvision.models.get_model_weights(name)
    except (ValueError, KeyError):
        return False
    return True


def _name_hint(name: str) -> str:
    """Where a mistyped name may have been going: a task, close names, a family pattern."""
    task = difflib.get_close_matches(name, TASKS, n=1, cutoff=0.6)
    if task:
        return f"; did you mean task={task[0]!r}? (tasks are: {', '.join(TASKS)})"
    near = difflib.get_close_matches(name, list(MODELS), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(near)}?" if near else ""
    return f"{hint} (a pattern such as '{name}*' lists a family; see `pixelwise models`)"


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
    *,
    pretrained: bool | str | Path = False,
    in_chans: int | None = None,
    features_only: bool = False,
    **kwargs: Any,
) -> nn.Module:
    """Build model ``name``; ``weights`` is a state-dict file (torchvision's or ours), a
    Hugging Face-style folder, or ``"torchvision"`` (from the local cache).

    timm's spellings are accepted too: ``pretrained=True`` (torchvision's weights),
    ``pretrained=PATH`` (= ``weights``), ``in_chans`` (= ``in_channels``), and
    ``features_only=True``, which returns a :class:`~pixelwise.models.base.FeaturePyramid`
    (the classifier without its head, returning the maps of every level). A class count
    other than the weights' keeps a fresh head; ``new_classifier=True`` starts a fresh
    head even when the count matches (transfer to other classes of the same number).
    """
    if in_chans is not None:
        if in_channels not in (3, in_chans):
            raise ModelError(f"model '{name}': in_chans={in_chans} and in_channels={in_channels}")
        in_channels = in_chans
    if pretrained:
        if weights is not None:
            raise ModelError(f"model '{name}': give pretrained or weights, not both")
        weights = "torchvision" if pretrained is True else pretrained
    if is_import_path(name):  # a model class of the user's: package.module:ClassName
        return create_imported_model(name, num_classes, in_channels, weights, **kwargs)
    spec = get_spec(name)
    if features_only and spec.task != "classification":
        raise ModelError(f"features_only: '{name}' is a {spec.task} model, not a classifier")
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
    return FeaturePyramid(model) if features_only else model


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
