"""Loading pretrained weights into a model, tolerant of a new classifier."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..log import logger


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a file: a raw state dict, or a pixelwise checkpoint's ``model``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(obj).__name__}")
    return obj


def load_pretrained(model: nn.Module, weights: str | Path, name: str = "model") -> list[str]:
    """Load ``weights`` into ``model``; keys whose shape differs (a new head) are skipped.

    Returns the skipped keys, and raises when anything other than the classifier is
    missing, so that weights of another architecture fail loudly.
    """
    from . import ModelError

    if str(weights) == "torchvision":
        import torchvision

        reference = torchvision.models.get_model(name, weights="DEFAULT")
        state = reference.state_dict()
        source = f"torchvision's {name} weights"
    else:
        state = read_state_dict(weights)
        source = str(weights)
    own = model.state_dict()
    skipped = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    for key in skipped:
        del state[key]
    result = model.load_state_dict(state, strict=False)
    head = tuple(f"{m}." for m in getattr(model, "classifier_module_names", lambda: [])())
    missing = [k for k in result.missing_keys if not k.startswith(head) and k not in skipped]
    if missing or result.unexpected_keys:
        raise ModelError(
            f"{source} do not fit model '{name}': {len(missing)} missing keys "
            f"(e.g. {missing[:3]}), {len(result.unexpected_keys)} unexpected keys "
            f"(e.g. {result.unexpected_keys[:3]})"
        )
    if skipped:
        logger.info(f"{source}: new classifier, skipped {', '.join(skipped)}")
    return skipped
