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

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, Dataset, Subset  # noqa: E402

from ..models.base import split_output  # noqa: E402
from .images import to_display  # noqa: E402


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


def plot_mistakes(
    dataset: Dataset,
    mistakes: Sequence[Mistake],
    class_names: Sequence[str],
    path: str | Path,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    columns: int = 6,
) -> Path:
    """A grid of the mistakes, each captioned 'true → predicted (confidence)'."""
    path = Path(path)
    columns = max(1, min(columns, len(mistakes)))
    rows = max(1, math.ceil(len(mistakes) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(2.2 * columns, 2.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, mistake in zip(axes.flat, mistakes):
        image, _ = dataset[mistake.index]
        ax.imshow(to_display(image, mean, std), interpolation="nearest")
        ax.set_title(
            f"{class_names[mistake.true]} → {class_names[mistake.predicted]}\n"
            f"{mistake.confidence:.0%} sure",
            fontsize=8,
        )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


@torch.no_grad()
def predict_masks(
    model: nn.Module, dataset: Dataset, count: int = 6
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``count`` images spread over a segmentation split, their masks and predictions."""
    from torch.nn import functional as F

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
