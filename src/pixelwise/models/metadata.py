"""Per-model metadata as data, as torchvision's ``Weights.meta``: read from
``metadata.json`` beside this file, which ``python -m pixelwise.analysis.metadata``
writes (and ``tests/models/test_metadata.py`` checks against fresh counts).

For every zoo model: its task, parameters and MACs per image at its default input
size and class count, and that input size; for a model torchvision publishes weights
for, how those weights expect their images (resize, crop, mean, std, interpolation) and
the accuracy torchvision reports for them.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from .base import ModelError

METADATA_FILE = "metadata.json"


@dataclass(frozen=True)
class PretrainedMeta:
    """How torchvision's weights for a model expect their images, and how they score."""

    source: str  # e.g. "torchvision ResNet18_Weights.IMAGENET1K_V1"
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str
    resize_size: int | None
    crop_size: int | None
    metrics: dict[str, float]  # as torchvision reports them (ImageNet acc@1, VOC mIoU, ...)


@dataclass(frozen=True)
class ModelMeta:
    name: str
    task: str
    params: int
    macs: int  # per image at input_size
    input_size: tuple[int, int, int]
    num_classes: int
    pretrained: PretrainedMeta | None = None

    @property
    def flops(self) -> int:
        return 2 * self.macs


@functools.cache
def _table() -> dict[str, dict[str, Any]]:
    text = (resources.files("pixelwise.models") / METADATA_FILE).read_text()
    return json.loads(text)


def model_meta(name: str) -> ModelMeta:
    """The metadata of zoo model ``name`` (a ``ModelError`` for a name without any)."""
    table = _table()
    if name not in table:
        raise ModelError(f"no metadata for model '{name}' (see `pixelwise models`)")
    raw = dict(table[name])
    pretrained = raw.pop("pretrained", None)
    return ModelMeta(
        name=name,
        task=raw["task"],
        params=int(raw["params"]),
        macs=int(raw["macs"]),
        input_size=tuple(raw["input_size"]),
        num_classes=int(raw["num_classes"]),
        pretrained=None
        if pretrained is None
        else PretrainedMeta(
            source=pretrained["source"],
            mean=tuple(pretrained["mean"]),
            std=tuple(pretrained["std"]),
            interpolation=pretrained["interpolation"],
            resize_size=pretrained.get("resize_size"),
            crop_size=pretrained.get("crop_size"),
            metrics=dict(pretrained.get("metrics") or {}),
        ),
    )
