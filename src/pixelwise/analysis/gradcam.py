"""Grad-CAM (Selvaraju et al., 2017): where a classifier looked for its answer.

For class c with score y_c and a layer's activations A (C channels of h x w), each
channel's weight is its average gradient, and the map is their weighted sum:

    α_k = mean_ij ∂y_c / ∂A_k[i, j]        L = ReLU(Σ_k α_k A_k)

upsampled bilinearly to the image and scaled to [0, 1] per image. The default layer is
the last stage of the classifier (``feature_info[-1]``), whose maps are the most
semantic that still have a position.
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


@dataclass
class GradCam:
    """Heat maps (N, H, W) in [0, 1] for ``classes`` (N,), with their probabilities."""

    heatmaps: torch.Tensor
    classes: torch.Tensor
    probabilities: torch.Tensor
    layer: str


def default_gradcam_layer(model: nn.Module) -> str:
    """The last stage of a classifier; else the last module with a spatial output."""
    info = getattr(model, "feature_info", None)
    if info:
        return info[-1].name
    convs = [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise UserError(f"{type(model).__name__} has no Conv2d: pass a layer name")
    return convs[-1]


def grad_cam(
    model: nn.Module,
    images: torch.Tensor,
    layer: str | None = None,
    target_classes: Sequence[int] | torch.Tensor | None = None,
) -> GradCam:
    """Grad-CAM maps of ``images`` (normalised, N x C x H x W) for the predicted or given classes."""
    layer = layer or default_gradcam_layer(model)
    module = find_module(model, layer)
    captured: list[torch.Tensor] = []

    def keep_activation(mod: nn.Module, inputs: tuple, output: object) -> object:
        if not isinstance(output, torch.Tensor) or output.dim() != 4:
            shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output)
            raise UserError(
                f"Grad-CAM needs a layer with an (N, C, H, W) output; {layer!r} gives {shape}: "
                "choose a convolutional layer (see `pixelwise analyze MODEL`)"
            )
        captured.append(output)
        return output.clone()  # an in-place op after the layer must not change A

    handle = module.register_forward_hook(keep_activation)
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            x = images.to(model_device(model)).detach().requires_grad_(True)
            logits = split_output(model(x))[0]
            if logits.dim() != 2:
                raise UserError(
                    "Grad-CAM here explains classifiers: the output must be (N, classes)"
                )
            if target_classes is None:
                classes = logits.argmax(dim=1)
            else:
                classes = torch.as_tensor(target_classes, device=logits.device).long().reshape(-1)
            score = logits.gather(1, classes[:, None]).sum()
            (gradients,) = torch.autograd.grad(score, captured[0])
    finally:
        handle.remove()
        model.train(was_training)
    activation = captured[0].detach()
    weights = gradients.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * activation).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    peak = cam.flatten(1).amax(dim=1).clamp_min(1e-12)[:, None, None]
    probabilities = logits.detach().softmax(dim=1).gather(1, classes[:, None])[:, 0]
    return GradCam((cam / peak).cpu(), classes.cpu(), probabilities.cpu(), layer)
