"""Grad-CAM (Selvaraju et al., 2017) and Grad-CAM++ (Chattopadhay et al., 2018): where
a model looked for its answer.

For a target score y and a layer's activations A (C channels of h x w), with
g = ∂y/∂A, each channel k gets a weight and the map is their weighted sum:

    Grad-CAM      α_k = mean_ij g_k[i, j]
    Grad-CAM++    α_k = Σ_ij a_k[i, j] · ReLU(g_k[i, j]),
                  a = g² / (2 g² + Σ_ij A_k · g³)      (0 where g = 0)
    map           L = ReLU(Σ_k α_k A_k)

upsampled bilinearly to the image and scaled to [0, 1] per image. Grad-CAM++ weighs
each position by how much it adds, so several objects of a class all light up rather
than the strongest one alone. Its weights assume activations >= 0 (a layer after a
ReLU, as every stage's output is): on a layer with negative outputs Σ_ij A_k can be
negative and its map inverted, so explain the activation after a convolution.

The target y of a classifier is the logit of the class (predicted or given). For a
segmentation model it is the class's logits summed over the pixels predicted as that
class (pytorch-grad-cam's ``SemanticSegmentationTarget``): the map explains the
predicted mask of one class.

The default layer is the deepest map with at least ``MIN_SIDE`` x ``MIN_SIDE``
positions at the images' size: a classifier's last stage (``feature_info``) or, without
stages, a convolution. A map of 2 x 2 positions (the last stage of a small CNN on 16 x 16
digits) upsamples to a blur with no place in it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import UserError
from ..models.base import split_output
from .explain import find_module
from .receptive_field import model_device

MIN_SIDE = 4  # positions per side of the default layer's map
ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.Hardswish)


@dataclass
class GradCam:
    """Heat maps (N, H, W) in [0, 1] for ``classes`` (N,), by Grad-CAM and Grad-CAM++.

    ``probabilities``: a classifier's probability of the class; a segmentation model's
    mean probability over the class's pixels. ``masks`` (segmentation only): the pixels
    predicted as the class (N, H, W), whose logits are the target.
    """

    heatmaps: torch.Tensor
    classes: torch.Tensor
    probabilities: torch.Tensor
    layer: str
    heatmaps_plusplus: torch.Tensor
    masks: torch.Tensor | None = None

    @property
    def coverage(self) -> torch.Tensor | None:
        """The fraction of each image predicted as its class (segmentation)."""
        return None if self.masks is None else self.masks.float().mean(dim=(1, 2))


def default_gradcam_layer(model: nn.Module, input_size: Sequence[int]) -> str:
    """The deepest layer whose map is at least ``MIN_SIDE`` on each side for a
    (C, H, W) input: among a classifier's stages (``feature_info``, also a
    segmentation model's encoder's), else among its convolutions and activations (of
    equal sizes the last, so the activation after a convolution); the largest map
    where none is that large."""
    heads = tuple(getattr(model, "classifier_module_names", list)())  # the logits: no news
    candidates = _stage_names(model) or [
        name
        for name, m in model.named_modules()
        if isinstance(m, (nn.Conv2d, *ACTIVATIONS)) and name.split(".")[0] not in heads
    ]
    if not candidates:
        raise UserError(f"{type(model).__name__} has no Conv2d: pass a layer name")
    sides = _output_sides(model, candidates, input_size)
    ran = [name for name in candidates if name in sides]
    large = [name for name in ran if sides[name][0] >= MIN_SIDE and sides[name][1] >= MIN_SIDE]
    if large:  # the smallest map that is large enough; the last of equals
        return min(reversed(large), key=lambda name: sides[name][0] * sides[name][1])
    return max(reversed(ran), key=lambda name: min(sides[name]))


def _stage_names(model: nn.Module) -> list[str]:
    """``feature_info`` level names of the model, or of a child (an encoder)."""
    for prefix, module in [("", model), *model.named_children()]:
        info = getattr(module, "feature_info", None)
        if info:
            return [f"{prefix}.{level.name}" if prefix else level.name for level in info]
    return []


@torch.no_grad()
def _output_sides(
    model: nn.Module, names: Sequence[str], input_size: Sequence[int]
) -> dict[str, tuple[int, int]]:
    """(h, w) of each named layer's spatial output in one eval-mode pass of zeros."""
    sides: dict[str, tuple[int, int]] = {}
    modules = dict(model.named_modules())

    def hook_for(name: str):
        def keep(module: nn.Module, inputs: tuple, output: object) -> None:
            if isinstance(output, torch.Tensor) and output.dim() == 4:
                sides.setdefault(name, (int(output.shape[2]), int(output.shape[3])))

        return keep

    handles = [modules[n].register_forward_hook(hook_for(n)) for n in names if n in modules]
    was_training = model.training
    model.eval()
    try:
        model(torch.zeros(1, *input_size, device=model_device(model)))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return sides


def grad_cam(
    model: nn.Module,
    images: torch.Tensor,
    layer: str | None = None,
    target_classes: Sequence[int] | torch.Tensor | None = None,
    skip_class: int | None = None,
) -> GradCam:
    """Grad-CAM and Grad-CAM++ maps of ``images`` (normalised, N x C x H x W).

    The class per image is ``target_classes``, else the predicted one (segmentation: the
    class predicted on most pixels, other than ``skip_class``, e.g. the background,
    unless nothing else was predicted).
    """
    layer = layer or default_gradcam_layer(model, tuple(images.shape[1:]))
    module = find_module(model, layer)
    captured: list[torch.Tensor] = []

    def keep_activation(mod: nn.Module, inputs: tuple, output: object) -> object:
        if not isinstance(output, torch.Tensor) or output.dim() != 4:
            shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output)
            raise UserError(
                f"Grad-CAM needs a layer with an (N, C, H, W) output; {layer!r} gives {shape}: "
                "choose a convolutional layer (see `pixelwise analyze MODEL`)"
            )
        if not captured:  # the first call, for a layer used twice
            captured.append(output)
        return output.clone()  # an in-place op after the layer must not change A

    handle = module.register_forward_hook(keep_activation)
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            x = images.to(model_device(model)).detach().requires_grad_(True)
            logits = split_output(model(x))[0]
            if not captured:
                raise UserError(f"layer {layer!r} does not run in an eval-mode forward pass")
            target = _target(logits, target_classes, skip_class)
            (gradients,) = torch.autograd.grad(target.score, captured[0])
    finally:
        handle.remove()
        model.train(was_training)
    activation = captured[0].detach()
    gradcam = _to_image(_grad_cam_weights(gradients), activation, images.shape[-2:])
    plusplus = _to_image(
        _grad_cam_plusplus_weights(gradients, activation), activation, images.shape[-2:]
    )
    return GradCam(
        gradcam,
        target.classes.cpu(),
        target.probabilities.cpu(),
        layer,
        plusplus,
        None if target.masks is None else target.masks.cpu(),
    )


@dataclass
class _Target:
    score: torch.Tensor  # the scalar whose gradient is taken (summed over the batch)
    classes: torch.Tensor
    probabilities: torch.Tensor
    masks: torch.Tensor | None


def _target(
    logits: torch.Tensor,
    target_classes: Sequence[int] | torch.Tensor | None,
    skip_class: int | None,
) -> _Target:
    if logits.dim() not in (2, 4):
        raise UserError(
            f"Grad-CAM explains (N, classes) or (N, classes, H, W) outputs, got {tuple(logits.shape)}"
        )
    given = None
    if target_classes is not None:
        given = torch.as_tensor(target_classes, device=logits.device).long().reshape(-1)
        if given.numel() == 1:
            given = given.expand(len(logits))
        if given.numel() != len(logits) or not (
            0 <= int(given.min()) <= int(given.max()) < logits.shape[1]
        ):
            raise UserError(
                f"target classes {given.tolist()} must be one class index per image, "
                f"each below {logits.shape[1]}"
            )
    probabilities = logits.detach().float().softmax(dim=1)
    if logits.dim() == 2:
        classes = logits.argmax(dim=1) if given is None else given
        score = logits.gather(1, classes[:, None]).sum()
        return _Target(score, classes, probabilities.gather(1, classes[:, None])[:, 0], None)
    predicted = logits.detach().argmax(dim=1)
    classes = _largest_class(predicted, logits.shape[1], skip_class) if given is None else given
    masks = predicted == classes[:, None, None]
    chosen = logits.gather(1, classes[:, None, None, None].expand(-1, 1, *logits.shape[2:]))[:, 0]
    score = (chosen * masks).sum()
    class_probability = probabilities.gather(
        1, classes[:, None, None, None].expand(-1, 1, *logits.shape[2:])
    )[:, 0]
    pixels = masks.flatten(1).sum(dim=1)
    mean = (class_probability * masks).flatten(1).sum(dim=1) / pixels.clamp_min(1)
    return _Target(score, classes, mean, masks)


def _largest_class(
    predicted: torch.Tensor, num_classes: int, skip_class: int | None
) -> torch.Tensor:
    """Per image, the class predicted on most pixels, ``skip_class`` only if alone."""
    counts = torch.stack([torch.bincount(p.flatten(), minlength=num_classes) for p in predicted])
    if skip_class is not None and 0 <= skip_class < num_classes:
        others = counts.clone()
        others[:, skip_class] = -1
        alone = counts.sum(dim=1) == counts[:, skip_class]
        return torch.where(alone, counts.argmax(dim=1), others.argmax(dim=1))
    return counts.argmax(dim=1)


def _grad_cam_weights(gradients: torch.Tensor) -> torch.Tensor:
    return gradients.mean(dim=(2, 3), keepdim=True)


def _grad_cam_plusplus_weights(gradients: torch.Tensor, activation: torch.Tensor) -> torch.Tensor:
    """Grad-CAM++'s closed form (its eq. 19 with an exponential score, as in
    pytorch-grad-cam): a = g² / (2 g² + Σ_ij A · g³), α = Σ_ij a · ReLU(g)."""
    squared, cubed = gradients.pow(2), gradients.pow(3)
    total = activation.sum(dim=(2, 3), keepdim=True)
    denominator = 2 * squared + total * cubed
    alpha = squared / torch.where(denominator != 0, denominator, torch.ones_like(denominator))
    alpha = torch.where(gradients != 0, alpha, torch.zeros_like(alpha))
    return (alpha * F.relu(gradients)).sum(dim=(2, 3), keepdim=True)


def _to_image(weights: torch.Tensor, activation: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """ReLU(Σ_k α_k A_k), upsampled to ``size`` and scaled to [0, 1] per image."""
    cam = F.relu((weights * activation).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=tuple(size), mode="bilinear", align_corners=False)[:, 0]
    peak = cam.flatten(1).amax(dim=1).clamp_min(1e-12)[:, None, None]
    return (cam / peak).cpu()
