"""Segmentation pictures: a colour per class, image | truth | prediction, overlays.

Colours follow the PASCAL VOC palette (class 0 black, then the bit-interleaved
sequence that keeps neighbouring classes apart); pixels labelled ``ignore_index`` are
white. A class named "background" stays transparent in overlays.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from .images import to_display  # noqa: E402

IGNORE_COLOR = (255, 255, 255)


def palette(num_classes: int) -> np.ndarray:
    """(num_classes, 3) uint8 colours: the PASCAL VOC palette, bit by bit from the index."""
    colors = np.zeros((num_classes, 3), dtype=np.uint8)
    for index in range(num_classes):
        value, r, g, b = index, 0, 0, 0
        for shift in range(7, -1, -1):
            r |= (value & 1) << shift
            g |= ((value >> 1) & 1) << shift
            b |= ((value >> 2) & 1) << shift
            value >>= 3
        colors[index] = (r, g, b)
    return colors


def colorize(mask: torch.Tensor | np.ndarray, colors: np.ndarray) -> np.ndarray:
    """(H, W) class indices -> (H, W, 3) uint8; indices outside the palette are white."""
    m = np.asarray(mask.cpu() if isinstance(mask, torch.Tensor) else mask).astype(np.int64)
    out = np.empty((*m.shape, 3), dtype=np.uint8)
    out[:] = IGNORE_COLOR
    valid = (m >= 0) & (m < len(colors))
    out[valid] = colors[m[valid]]
    return out


def background_index(class_names: Sequence[str]) -> int | None:
    """The index of a class called background (kept transparent in overlays), if any."""
    for i, name in enumerate(class_names):
        if name.lower().strip("_") in ("background", "bg", "void"):
            return i
    return None


def overlay(
    image: np.ndarray,
    mask: torch.Tensor | np.ndarray,
    colors: np.ndarray,
    alpha: float = 0.5,
    background: int | None = None,
) -> np.ndarray:
    """The image with class colours blended in: ``(1 - alpha)·image + alpha·colour``."""
    m = np.asarray(mask.cpu() if isinstance(mask, torch.Tensor) else mask).astype(np.int64)
    painted = colorize(m, colors).astype(np.float32)
    blend = (m >= 0) & (m < len(colors))
    if background is not None:
        blend &= m != background
    out = image.astype(np.float32)
    out[blend] = (1 - alpha) * out[blend] + alpha * painted[blend]
    return out.round().astype(np.uint8)


def legend_handles(class_names: Sequence[str], colors: np.ndarray, present: set[int]) -> list:
    return [
        Patch(facecolor=colors[i] / 255.0, edgecolor="black", linewidth=0.5, label=name)
        for i, name in enumerate(class_names)
        if i in present
    ]


def plot_segmentation(
    images: torch.Tensor,
    targets: torch.Tensor,
    predictions: torch.Tensor,
    class_names: Sequence[str],
    path: str | Path,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    with_overlay: bool = True,
    title: str | None = None,
) -> Path:
    """One row per image: image | ground truth | prediction [| overlay], with a colour legend.

    ``images`` are normalised (N, C, H, W); ``targets`` and ``predictions`` (N, H, W) indices.
    """
    path = Path(path)
    colors = palette(len(class_names))
    background = background_index(class_names)
    columns = ["image", "ground truth", "prediction"] + (["overlay"] if with_overlay else [])
    count = len(images)
    fig, axes = plt.subplots(
        count, len(columns), figsize=(2.6 * len(columns), 2.6 * count + 0.8), squeeze=False
    )
    present: set[int] = set()
    for row in range(count):
        picture = to_display(images[row], mean, std)
        present |= set(np.unique(targets[row].cpu().numpy()).tolist())
        present |= set(np.unique(predictions[row].cpu().numpy()).tolist())
        panels = [picture, colorize(targets[row], colors), colorize(predictions[row], colors)]
        if with_overlay:
            panels.append(overlay(picture, predictions[row], colors, background=background))
        for col, panel in enumerate(panels):
            ax = axes[row, col]
            ax.imshow(panel, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(columns[col], fontsize=10)
    handles = legend_handles(class_names, colors, present)
    fig.legend(
        handles=handles, loc="lower center", ncol=min(len(handles), 8), fontsize=8, frameon=False
    )
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.5 / (2.6 * count + 0.8), 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_overlays(
    images: torch.Tensor,
    masks: torch.Tensor,
    class_names: Sequence[str],
    path: str | Path,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    columns: int = 4,
    alpha: float = 0.5,
) -> Path:
    """A grid of images with their masks (predicted or true) blended in, and a legend."""
    path = Path(path)
    colors = palette(len(class_names))
    background = background_index(class_names)
    count = len(images)
    rows = -(-count // columns)
    fig, axes = plt.subplots(
        rows, columns, figsize=(2.6 * columns, 2.6 * rows + 0.6), squeeze=False
    )
    present: set[int] = set()
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= count:
            continue
        picture = to_display(images[i], mean, std)
        present |= set(np.unique(masks[i].cpu().numpy()).tolist())
        ax.imshow(overlay(picture, masks[i], colors, alpha, background), interpolation="nearest")
    handles = legend_handles(class_names, colors, present)
    fig.legend(
        handles=handles, loc="lower center", ncol=min(len(handles), 8), fontsize=8, frameon=False
    )
    fig.tight_layout(rect=(0, 0.45 / (2.6 * rows + 0.6), 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
