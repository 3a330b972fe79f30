"""Loading pretrained weights into a model, tolerant of a new classifier."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..checkpoint import read_state_dict
from ..log import logger
from .base import ModelError


def torchvision_state_dict(name: str) -> dict[str, torch.Tensor]:
    """torchvision's default weights for ``name``, from the local cache only.

    Nothing is downloaded here (tests and offline machines must not reach the network):
    a file missing from ``$TORCH_HOME/hub/checkpoints`` is one line saying where to put it.
    The file is read like any weights file (``weights_only``).
    """
    import torchvision  # only here: looking up torchvision's weight registry

    try:
        default = torchvision.models.get_model_weights(name).DEFAULT
    except (ValueError, KeyError) as err:
        raise ModelError(
            f"model.weights=torchvision: torchvision has no weights for '{name}'"
        ) from err
    filename = default.url.rsplit("/", 1)[-1]
    cached = Path(torch.hub.get_dir(), "checkpoints", filename)
    if not cached.is_file():
        raise ModelError(
            f"model.weights=torchvision: torchvision's {name} weights are not in the local cache "
            f"({cached}); pixelwise does not download: copy {filename} (published at "
            f"{default.url}) into {cached.parent}, or set TORCH_HOME to a folder whose "
            "hub/checkpoints holds it, or give model.weights=PATH"
        )
    return read_state_dict(cached)


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
        state = torchvision_state_dict(name)
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
