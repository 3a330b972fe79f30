"""Loading pretrained weights into a model, tolerant of a new classifier."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..log import logger
from .base import ModelError


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
    """Load ``weights`` into ``model``, tolerating exactly two differences.

    * a classifier of another class count: its tensors are skipped (and reported),
      the model keeps its freshly initialised head;
    * a first convolution for another number of input channels: adapted as timm does,
      summed over the source channels for one channel, otherwise repeated and rescaled
      by ``source / target`` channels so that activations keep their scale.

    Anything else that differs (a missing layer, another width, another architecture)
    raises ``ModelError`` naming the first offending key. Returns the skipped keys.
    """
    if str(weights) == "torchvision":
        import torchvision  # only here: fetching torchvision's weights

        reference = torchvision.models.get_model(name, weights="DEFAULT")
        state = reference.state_dict()
        source = f"torchvision's {name} weights"
    else:
        state = read_state_dict(weights)
        source = str(weights)
    own = model.state_dict()
    head = tuple(f"{m}." for m in getattr(model, "classifier_module_names", lambda: [])())
    skipped, adapted = [], []
    for key, value in list(state.items()):
        if key not in own or own[key].shape == value.shape:
            continue
        if key.startswith(head):
            skipped.append(key)
            del state[key]
        elif _is_input_conv(value, own[key]):
            state[key] = adapt_input_channels(value, own[key].shape[1])
            adapted.append(key)
        else:
            raise ModelError(
                f"{source} do not fit model '{name}': {key} is {tuple(value.shape)} in the "
                f"weights but {tuple(own[key].shape)} in the model (another width or variant?)"
            )
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith(head) and k not in skipped]
    if missing or result.unexpected_keys:
        raise ModelError(
            f"{source} do not fit model '{name}': {len(missing)} missing keys "
            f"(e.g. {missing[:3]}), {len(result.unexpected_keys)} unexpected keys "
            f"(e.g. {result.unexpected_keys[:3]})"
        )
    if skipped:
        logger.info(f"{source}: new classifier, skipped {', '.join(skipped)}")
    if adapted:
        logger.info(f"{source}: adapted input channels of {', '.join(adapted)}")
    return skipped


def _is_input_conv(source: torch.Tensor, target: torch.Tensor) -> bool:
    """A conv weight that differs only in its input-channel dimension."""
    return (
        source.ndim == 4
        and target.ndim == 4
        and source.shape[0] == target.shape[0]
        and source.shape[2:] == target.shape[2:]
        and source.shape[1] != target.shape[1]
    )


def adapt_input_channels(weight: torch.Tensor, channels: int) -> torch.Tensor:
    """(C', C, k, k) filters for ``channels`` inputs instead of C."""
    source = weight.shape[1]
    if channels == 1:
        return weight.sum(dim=1, keepdim=True)
    repeats = -(-channels // source)
    return weight.repeat(1, repeats, 1, 1)[:, :channels] * (source / channels)
