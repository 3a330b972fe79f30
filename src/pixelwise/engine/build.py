"""Building a run's model from its config, and the model card that travels with it."""

from __future__ import annotations

from typing import Any

from torch import nn

from .. import __version__
from ..config import ExperimentConfig
from ..data.transforms import normalization
from ..models import create_model


def build_model(cfg: ExperimentConfig, num_classes: int) -> nn.Module:
    options = dict(cfg.model.options)
    if cfg.model.encoder is not None:
        options["encoder"] = cfg.model.encoder
    if cfg.model.encoder_weights is not None:
        options["encoder_weights"] = cfg.model.encoder_weights
    return create_model(
        cfg.model.name,
        num_classes=num_classes,
        in_channels=cfg.data.in_channels,
        weights=cfg.model.weights,
        **options,
    )


def model_card(cfg: ExperimentConfig, class_names: list[str]) -> dict[str, Any]:
    """What prediction needs, with no config file: architecture, classes, preprocessing."""
    mean, std = normalization(cfg.data)
    options = dict(cfg.model.options)
    if cfg.model.encoder is not None:
        options["encoder"] = cfg.model.encoder
    return {
        "pixelwise_version": __version__,
        "task": cfg.task,
        "model": cfg.model.name,
        "model_options": options,
        "num_classes": len(class_names),
        "class_names": list(class_names),
        "in_channels": cfg.data.in_channels,
        "image_size": list(cfg.data.image_size),
        "normalize": cfg.data.normalize,
        "mean": list(mean),
        "std": list(std),
        "ignore_index": cfg.data.ignore_index,
        "run_name": cfg.name,
    }
