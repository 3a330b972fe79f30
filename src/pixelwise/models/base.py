"""The interface every pixelwise model shares.

Classifiers follow timm's split: ``forward_features`` gives the last feature map,
``forward_head`` pools and classifies, ``reset_classifier`` swaps the last layer for
a new class count. ``feature_info`` names the multi-scale levels (channels and
stride) that ``forward_pyramid`` returns, which is what lets any classifier serve as
a segmentation encoder.

Segmentation models follow segmentation_models_pytorch's split: an ``encoder`` gives
feature maps shallow to deep, a ``decoder`` turns them into one map, a ``head`` scores
every pixel (:class:`SegmentationModel`).

Both declare ``pretrained_modules()``: the modules that pretrained weights fill. That
declaration is what fine-tuning (``engine/finetune.py``) reads to tell pretrained
parameters from new ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError


class ModelError(UserError):
    """An unknown model name, a bad option, or weights that do not fit."""


def split_output(output: Any) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """``(logits, auxiliary logits)`` of any model's output: the one decoder of the
    output convention.

    A model returns a logits tensor; or, in training mode, ``{"out": logits, "aux":
    aux_logits or a list of them}`` (torchvision's segmentation models); or a tuple
    ``(logits, aux, ...)`` (torchvision's GoogLeNet/Inception in training mode).
    """
    if isinstance(output, torch.Tensor):
        return output, []
    if isinstance(output, dict):
        if "out" not in output:
            raise ModelError(
                f"a model returned a dict with keys {sorted(output)}; the logits must be "
                "under 'out' (and auxiliary logits under 'aux')"
            )
        aux = output.get("aux")
        if aux is None:
            return output["out"], []
        return output["out"], list(aux) if isinstance(aux, (list, tuple)) else [aux]
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0], [o for o in output[1:] if isinstance(o, torch.Tensor)]
    raise ModelError(
        f"a model returned a {type(output).__name__}; expected logits (a tensor), "
        "{'out': logits, 'aux': ...} or a tuple (logits, aux, ...)"
    )


@dataclass(frozen=True)
class FeatureLevel:
    """One level of a classifier's feature pyramid."""

    name: str  # submodule whose output this is, for reading
    channels: int
    stride: int  # input pixels per output pixel


def has_state(module: nn.Module) -> bool:
    """Whether ``module`` holds parameters or buffers (anything a state dict fills)."""
    return next(iter(module.state_dict(keep_vars=True)), None) is not None


def complement_module_names(model: nn.Module, excluded: Iterable[str]) -> list[str]:
    """The shallowest modules (and direct parameters) of ``model`` outside ``excluded``.

    ``excluded`` names modules at any depth (VGG's head is ``classifier.6``); a module
    that contains an excluded one is split into its children, the others are kept
    whole. Modules without parameters or buffers are left out: no weights fill them.
    For VGG without ``classifier.6`` this gives ``features``, ``classifier.0`` and
    ``classifier.3``; for a ViT, ``class_token`` (a parameter), ``conv_proj`` and
    ``encoder``.
    """
    excluded = set(excluded)
    names: list[str] = []

    def visit(module: nn.Module, prefix: str) -> None:
        names.extend(prefix + n for n, _ in module.named_parameters(recurse=False))
        names.extend(prefix + n for n, _ in module.named_buffers(recurse=False))
        for name, child in module.named_children():
            full = prefix + name
            if full in excluded or not has_state(child):
                continue
            if any(e.startswith(full + ".") for e in excluded):
                visit(child, full + ".")
            else:
                names.append(full)

    visit(model, "")
    return names


class Classifier(nn.Module):
    """Base for classifiers: subclasses define the three methods and ``feature_info``."""

    feature_info: list[FeatureLevel]
    num_classes: int
    dropped_head: tuple[str, ...] = ()  # set by encoders.as_encoder: the head it deleted

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        raise NotImplementedError

    def forward_pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps at every level of ``feature_info``, shallow to deep."""
        raise NotImplementedError

    def reset_classifier(self, num_classes: int) -> None:
        raise NotImplementedError

    def classifier_module_names(self) -> list[str]:
        """Names of the parameters' modules that form the head (replaced for new classes)."""
        raise NotImplementedError

    def pretrained_modules(self) -> list[str]:
        """What a classifier's pretrained weights fill: everything but the head
        (:func:`complement_module_names` of ``classifier_module_names()``); all of an
        encoder, whose head is gone."""
        head = [] if self.dropped_head else self.classifier_module_names()
        return complement_module_names(self, head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


SegmentationOutput = torch.Tensor | dict[str, torch.Tensor]


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


def resize_to(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """``x`` resized bilinearly to ``size`` (``align_corners=False``, as torchvision's
    segmentation models); unchanged when it already has that size."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


def _rename_moved_modules(
    model: SegmentationModel, state_dict: dict[str, Any], prefix: str, *_: Any
) -> None:
    """Load-state-dict hook: keys under a name of ``model.moved_modules`` move to its new place."""
    for key in list(state_dict):
        first, dot, rest = key[len(prefix) :].partition(".")
        if key.startswith(prefix) and first in model.moved_modules:
            state_dict[prefix + model.moved_modules[first] + dot + rest] = state_dict.pop(key)


class SegmentationModel(nn.Module):
    """Base for segmentation models: encoder -> decoder -> head, on any input size.

    Subclasses set three modules (segmentation_models_pytorch's decomposition):

    - ``encoder``: has ``feature_info`` and ``forward_pyramid(x)``, the feature maps
      shallow to deep (a zoo classifier without its head, or a family's own trunk);
    - ``decoder``: those features -> one map (or what the head takes);
    - ``head``: that -> per-pixel class scores. Only the head depends on the class count.

    ``forward`` pads the input at the bottom and right to a multiple of
    ``size_divisor`` (so every encoder level is exactly ``size / stride``), runs
    :meth:`forward_padded`, which resizes coarser logits bilinearly to the padded size,
    and crops back: the logits have the input's height and width. ``keeps_input_size =
    False`` is for models whose logits cover only the centre of the input by design (the
    unpadded U-Net). In training mode a model with an auxiliary head
    (:meth:`forward_aux`) returns ``{"out": logits, "aux": aux_logits}``, otherwise the
    logits alone.

    ``pretrained_modules()`` declares what pretrained weights (``encoder_weights``)
    fill; nothing by default, families on a pretrainable encoder override it.

    ``moved_modules`` maps the top-level names of state dicts saved before this shape
    (U-Net's ``down``, FCN's ``fc6``, ...) to where those modules are now, so that older
    checkpoints still load.
    """

    num_classes: int
    size_divisor: int = 1
    keeps_input_size: bool = True
    moved_modules: dict[str, str] = {}
    encoder: nn.Module
    decoder: nn.Module
    head: nn.Module

    def __init__(self) -> None:
        super().__init__()
        if self.moved_modules:
            self.register_load_state_dict_pre_hook(_rename_moved_modules)

    def encode(self, x: torch.Tensor) -> Any:
        """The encoder's features, shallow to deep."""
        return self.encoder.forward_pyramid(x)

    def forward_aux(self, features: Any) -> torch.Tensor | None:
        """Auxiliary logits from the encoder's features (training mode only); none here."""
        return None

    def forward_padded(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(logits, aux_logits or None)`` for an input whose size divides by ``size_divisor``."""
        features = self.encode(x)
        logits = self.head(self.decoder(features))
        aux = self.forward_aux(features) if self.training else None
        if self.keeps_input_size:
            logits = resize_to(logits, x.shape[-2:])
            aux = None if aux is None else resize_to(aux, x.shape[-2:])
        return logits, aux

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

    def pretrained_modules(self) -> list[str]:
        """Top-level modules that pretrained weights fill; none for a model from scratch."""
        return []


Task = Literal["classification", "segmentation"]


@dataclass(frozen=True)
class ModelSpec:
    """What the registry knows about a model name: how to build it and what it expects."""

    builder: Callable[..., nn.Module]
    task: Task
    input_size: tuple[int, int, int] = (3, 224, 224)
    description: str = ""
    defaults: dict = field(default_factory=dict)


def as_encoder(classifier: Classifier) -> Classifier:
    """``classifier`` without its head: it then only computes ``forward_pyramid``.

    Every top-level module holding a head module (``classifier_module_names``: VGG's
    ``classifier.6`` takes all of ``classifier``, fc6 and fc7 with it) is deleted, and
    the names are recorded in ``dropped_head``. Their parameters would never get a
    gradient; without them the state-dict keys are the classifier's own minus the head.
    The classifier is consumed: build a fresh one (``create_encoder`` does) to keep it.
    """
    if not isinstance(classifier, Classifier):
        raise TypeError(
            f"a segmentation encoder must be a pixelwise Classifier (with forward_pyramid "
            f"and feature_info), got {type(classifier).__name__}"
        )
    head = sorted({name.split(".")[0] for name in classifier.classifier_module_names()})
    for name in head:
        delattr(classifier, name)
    classifier.dropped_head = tuple(head)
    return classifier


class FeaturePyramid(nn.Module):
    """``create_model(name, features_only=True)``: a classifier without its head whose
    forward returns the feature maps of every level, shallow to deep (timm's
    ``features_only``); ``feature_info`` gives each level's channels and stride."""

    def __init__(self, classifier: Classifier) -> None:
        super().__init__()
        self.body = as_encoder(classifier)
        self.feature_info = list(classifier.feature_info)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.body.forward_pyramid(x)

    def channels(self) -> list[int]:
        return [level.channels for level in self.feature_info]

    def reduction(self) -> list[int]:
        return [level.stride for level in self.feature_info]
