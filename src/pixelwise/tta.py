"""Inference beyond one forward pass: flip and translation test-time augmentation, and
sliding windows.

``predict_logits(model, images, tta_hflip, window, overlap, translate)`` is the one entry point
(``pixelwise eval`` and ``pixelwise predict`` use it). With neither option it returns
the model's own logits unchanged, so plain evaluation reproduces the training figures
exactly. Combined predictions average class *probabilities* (softmax), the quantity
that is comparable between views, and return their logarithm: log-probabilities are
valid logits (same argmax, ``softmax`` gives the averaged probabilities back,
cross-entropy on them is the loss of the averaged prediction).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .models.base import split_output

Predictor = Callable[[nn.Module, torch.Tensor], torch.Tensor]
Average = Literal["probabilities", "logits"]
Weighting = Literal["gaussian", "uniform"]


def forward_logits(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """One plain forward pass: the main logits of the model's output."""
    return split_output(model(images))[0]


@torch.no_grad()
def hflip_tta(
    model: nn.Module,
    images: torch.Tensor,
    average: Average = "probabilities",
    predictor: Predictor = forward_logits,
) -> torch.Tensor:
    """The mean prediction of ``images`` and their horizontal mirror.

    Segmentation logits (N, C, H, W) of the mirrored images are flipped back before
    averaging, so that each pixel is averaged with itself. ``average="probabilities"``
    returns ``log(mean softmax)``, ``"logits"`` the mean of the logits.
    """
    plain = predictor(model, images)
    mirrored = predictor(model, images.flip(-1))
    if mirrored.dim() == 4:
        mirrored = mirrored.flip(-1)
    if average == "logits":
        return (plain + mirrored) / 2
    probabilities = (plain.float().softmax(dim=1) + mirrored.float().softmax(dim=1)) / 2
    return probabilities.clamp_min(torch.finfo(torch.float32).tiny).log()


@torch.no_grad()
def translate_tta(
    model: nn.Module, images: torch.Tensor, pixels: int, predictor: Predictor = forward_logits
) -> torch.Tensor:
    """Classification: half the image itself, a quarter each of the image moved by
    ``pixels`` down-right and up-left (mirrored borders), probabilities averaged
    (airbench's "mirror + translate" level with ``predictor=hflip_tta``)."""
    height, width = images.shape[-2:]
    padded = F.pad(images, (pixels,) * 4, mode="reflect")
    shifted = [padded[..., :height, :width], padded[..., 2 * pixels :, 2 * pixels :]]
    views = [predictor(model, images), *(predictor(model, view) for view in shifted)]
    probabilities = [view.float().softmax(dim=1) for view in views]
    mean = probabilities[0] / 2 + (probabilities[1] + probabilities[2]) / 4
    return mean.clamp_min(torch.finfo(torch.float32).tiny).log()


def window_positions(size: int, window: int, stride: int) -> list[int]:
    """Start offsets of windows covering ``[0, size)``; the last one is aligned to the end.

    ``size=10, window=4, stride=3`` gives ``[0, 3, 6]``: 6 + 4 = 10 reaches the border
    without padding, however ``size`` relates to the stride.
    """
    if size <= window:
        return [0]
    starts = list(range(0, size - window + 1, stride))
    if starts[-1] + window < size:
        starts.append(size - window)
    return starts


def window_weights(
    height: int, width: int, weighting: Weighting = "gaussian", device: torch.device | None = None
) -> torch.Tensor:
    """(H, W) weights of one window: uniform, or a Gaussian centred on the window.

    The Gaussian has sigma = size / 8 per axis (as nnU-Net), so a pixel predicted near
    a window's border, with little context, counts less than the same pixel predicted
    near another window's centre. Weights are scaled to a maximum of 1 and floored at
    1e-3, so that every pixel has weight.
    """
    if weighting == "uniform":
        return torch.ones(height, width, device=device)
    if weighting != "gaussian":
        raise ValueError(f"weighting must be 'gaussian' or 'uniform', got {weighting!r}")

    def axis(n: int) -> torch.Tensor:
        x = torch.arange(n, device=device, dtype=torch.float32) - (n - 1) / 2
        sigma = max(n / 8, 1e-6)
        return torch.exp(-(x**2) / (2 * sigma**2))

    weights = axis(height)[:, None] * axis(width)[None, :]
    return (weights / weights.max()).clamp_min(1e-3)


@torch.no_grad()
def sliding_window(
    model: nn.Module,
    images: torch.Tensor,
    window: Sequence[int],
    overlap: float = 0.5,
    num_classes: int | None = None,
    weighting: Weighting = "gaussian",
    predictor: Predictor = forward_logits,
) -> torch.Tensor:
    """Segmentation logits (N, C, H, W) of images larger than the model's training size.

    Windows of ``window = (h, w)`` move with stride ``ceil(size * (1 - overlap))``;
    the last window of a row or column is aligned with the border, so any image size
    works without padding. A dimension smaller than the window is predicted whole.
    Each window's softmax probabilities are accumulated with ``window_weights``;
    the result is ``log(sum w * p / sum w)`` per pixel.
    """
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    if len(window) != 2 or min(window) < 1:
        raise ValueError(f"window must be (height, width) with positive sizes, got {window}")
    _, _, height, width = images.shape
    wh, ww = min(window[0], height), min(window[1], width)
    rows = window_positions(height, wh, max(1, math.ceil(wh * (1 - overlap))))
    cols = window_positions(width, ww, max(1, math.ceil(ww * (1 - overlap))))
    weights = window_weights(wh, ww, weighting, images.device)
    total: torch.Tensor | None = None
    norm = torch.zeros(height, width, device=images.device)
    for top in rows:
        for left in cols:
            tile = predictor(model, images[:, :, top : top + wh, left : left + ww])
            if tile.dim() != 4 or tile.shape[-2:] != (wh, ww):
                raise ValueError(
                    f"sliding-window inference needs per-pixel logits (N, C, {wh}, {ww}); "
                    f"the model returned {tuple(tile.shape)} (is it a segmentation model?)"
                )
            if total is None:
                channels = num_classes or tile.shape[1]
                total = images.new_zeros(
                    images.shape[0], channels, height, width, dtype=torch.float32
                )
            total[:, :, top : top + wh, left : left + ww] += tile.float().softmax(dim=1) * weights
            norm[top : top + wh, left : left + ww] += weights
    assert total is not None
    probabilities = total / norm
    return probabilities.clamp_min(torch.finfo(torch.float32).tiny).log()


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    images: torch.Tensor,
    tta_hflip: bool = False,
    window: tuple[int, int] | None = None,
    overlap: float = 0.5,
    num_classes: int | None = None,
    weighting: Weighting = "gaussian",
    translate: int = 0,
) -> torch.Tensor:
    """Logits of ``images``: plain, flip-averaged, windowed, or windowed with flips per
    window; ``translate`` pixels (classification) adds shifted views around the rest.

    Without options this is the model's own output (bit for bit); with ``tta_hflip``
    or ``window`` it is the log of the averaged probabilities. The model should be in
    eval mode.
    """
    predictor: Predictor = hflip_tta if tta_hflip else forward_logits
    if translate:
        return translate_tta(model, images, translate, predictor)
    if window is None:
        return predictor(model, images)
    return sliding_window(
        model, images, window, overlap, num_classes, weighting=weighting, predictor=predictor
    )


def make_predictor(
    tta_hflip: bool = False,
    window: tuple[int, int] | None = None,
    overlap: float = 0.5,
    weighting: Weighting = "gaussian",
    translate: int = 0,
) -> Predictor | None:
    """``predict(model, images)`` for ``engine.evaluate``; None where a forward pass is all."""
    if not tta_hflip and window is None and not translate:
        return None

    def predict(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        return predict_logits(
            model, images, tta_hflip, window, overlap, weighting=weighting, translate=translate
        )

    return predict
