"""Sample predictions of a trained model: its most confident mistakes, or segmentations.

The most confident mistakes are the images a classifier got wrong with the highest
probability on its wrong answer: mislabelled data, look-alike classes and shortcuts
show up there first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset, Subset

from ..models.base import split_output
from .figures import panel_figure, save_figure, shorten
from .images import to_display


@dataclass
class Mistake:
    index: int  # position in the dataset
    true: int
    predicted: int
    confidence: float  # softmax probability of the predicted class


def _device(model: nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def spread_indices(size: int, count: int | None) -> list[int]:
    """``count`` indices spread over ``range(size)`` (all of them when ``count`` is None)."""
    if count is None or count >= size:
        return list(range(size))
    return np.linspace(0, size - 1, count).round().astype(int).tolist()


@torch.no_grad()
def most_confident_mistakes(
    model: nn.Module,
    dataset: Dataset,
    count: int = 12,
    max_images: int | None = 2000,
    batch_size: int = 128,
) -> list[Mistake]:
    """Wrong predictions sorted by the probability the model gave its wrong class."""
    indices = spread_indices(len(dataset), max_images)  # type: ignore[arg-type]
    loader = DataLoader(Subset(dataset, indices), batch_size=batch_size)
    device = _device(model)
    was_training = model.training
    model.eval()
    mistakes: list[Mistake] = []
    offset = 0
    try:
        for images, targets in loader:
            probabilities = split_output(model(images.to(device)))[0].float().softmax(dim=1).cpu()
            confidence, predicted = probabilities.max(dim=1)
            for i in torch.nonzero(predicted != targets).flatten().tolist():
                mistakes.append(
                    Mistake(
                        indices[offset + i],
                        int(targets[i]),
                        int(predicted[i]),
                        float(confidence[i]),
                    )
                )
            offset += len(targets)
    finally:
        model.train(was_training)
    return sorted(mistakes, key=lambda m: -m.confidence)[:count]


CAPTION_FONT_SIZE = 8
NAME_LIMIT = 14  # characters of a class name in a caption: longer ones would overlap


def mistakes_figure(
    dataset: Dataset,
    mistakes: Sequence[Mistake],
    class_names: Sequence[str],
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    columns: int = 6,
) -> Figure:
    """A grid of the mistakes, each captioned 'true → predicted' over 'confidence sure',
    with both caption lines in a band reserved above its image."""
    columns = max(1, min(columns, len(mistakes)))
    rows = max(1, math.ceil(len(mistakes) / columns))
    pictures = [to_display(dataset[m.index][0], mean, std) for m in mistakes]
    height, width = pictures[0].shape[:2] if pictures else (1, 1)
    fig, axes = panel_figure(
        rows,
        columns,
        height / width,
        panel_width=2.0,
        caption_lines=2,
        font_size=CAPTION_FONT_SIZE,
    )
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, mistake, picture in zip(axes.flat, mistakes, pictures):
        ax.imshow(picture, interpolation="nearest")
        true = shorten(class_names[mistake.true], NAME_LIMIT)
        predicted = shorten(class_names[mistake.predicted], NAME_LIMIT)
        ax.set_title(
            f"{true} → {predicted}\n{mistake.confidence:.0%} sure",
            fontsize=CAPTION_FONT_SIZE,
            pad=2,
        )
    return fig


def plot_mistakes(
    dataset: Dataset,
    mistakes: Sequence[Mistake],
    class_names: Sequence[str],
    path: str | Path,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    columns: int = 6,
) -> Path:
    """``mistakes_figure`` as a PNG."""
    return save_figure(mistakes_figure(dataset, mistakes, class_names, mean, std, columns), path)


@torch.no_grad()
def predict_masks(
    model: nn.Module, dataset: Dataset, count: int = 6
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``count`` images spread over a segmentation split, their masks and predictions."""

    items = [dataset[i] for i in spread_indices(len(dataset), count)]  # type: ignore[arg-type]
    images = torch.stack([item[0] for item in items])
    masks = torch.stack([torch.as_tensor(item[1]) for item in items])
    was_training = model.training
    model.eval()
    try:
        logits = split_output(model(images.to(_device(model))))[0].float().cpu()
    finally:
        model.train(was_training)
    if logits.shape[-2:] != masks.shape[-2:]:
        logits = F.interpolate(logits, size=masks.shape[-2:], mode="bilinear")
    return images, masks, logits.argmax(dim=1)
