"""Pictures of what a network computes: feature-map grids, t-SNE scatters, Grad-CAM."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

from ..errors import UserError

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402


def plot_feature_maps(
    maps: torch.Tensor,
    path: str | Path,
    title: str = "feature maps",
    max_channels: int = 64,
    image: np.ndarray | None = None,
) -> Path:
    """The first ``max_channels`` channels of one (C, H, W) map as a grid, each scaled alone.

    ``image`` (H, W, 3 uint8), when given, is shown first for reference.
    """
    path = Path(path)
    maps = maps.detach().float().cpu()
    if maps.dim() == 4:
        maps = maps[0]
    if maps.dim() != 3:
        raise UserError(
            f"feature maps must be (C, H, W), got {tuple(maps.shape)}: is it a spatial layer?"
        )
    shown = maps[:max_channels]
    cells = len(shown) + (1 if image is not None else 0)
    columns = min(8, cells)
    rows = math.ceil(cells / columns)
    fig, axes = plt.subplots(
        rows, columns, figsize=(1.6 * columns, 1.6 * rows + 0.5), squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    flat = list(axes.flat)
    if image is not None:
        flat[0].imshow(image)
        flat[0].set_title("input", fontsize=7)
        flat = flat[1:]
    for channel, (ax, fmap) in enumerate(zip(flat, shown)):
        ax.imshow(fmap.numpy(), cmap="viridis", interpolation="nearest")
        ax.set_title(f"ch {channel}", fontsize=7)
    more = f", first {len(shown)} of {len(maps)} channels" if len(maps) > len(shown) else ""
    fig.suptitle(f"{title} ({maps.shape[1]}x{maps.shape[2]}{more})", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_tsne(
    embeddings: Mapping[str, np.ndarray],
    labels: np.ndarray,
    class_names: Sequence[str],
    path: str | Path,
    title: str = "t-SNE of features",
) -> Path:
    """One scatter per layer (e.g. low-level vs penultimate), points coloured by class."""
    path = Path(path)
    count = len(embeddings)
    fig, axes = plt.subplots(1, count, figsize=(5.2 * count + 1.6, 5), squeeze=False)
    cmap = plt.get_cmap("tab10" if len(class_names) <= 10 else "tab20")
    for ax, (layer, points) in zip(axes[0], embeddings.items()):
        for index, name in enumerate(class_names):
            chosen = labels == index
            if chosen.any():
                ax.scatter(
                    points[chosen, 0],
                    points[chosen, 1],
                    s=8,
                    color=cmap(index % cmap.N),
                    label=name,
                    alpha=0.8,
                )
        ax.set_title(layer)
        ax.set_xticks([])
        ax.set_yticks([])
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="center right", fontsize=8, markerscale=2, frameon=False)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 1 - 1.4 / (5.2 * count + 1.6), 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def heatmap_overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """An (H, W, 3) uint8 image with a [0, 1] heat map blended in through the jet colour map."""
    colored = plt.get_cmap("jet")(np.clip(heatmap, 0, 1))[..., :3] * 255
    return ((1 - alpha) * image.astype(np.float32) + alpha * colored).round().astype(np.uint8)


def plot_gradcam(
    images: Sequence[np.ndarray],
    heatmaps: torch.Tensor | np.ndarray,
    captions: Sequence[str],
    path: str | Path,
    title: str = "Grad-CAM",
    columns: int = 4,
) -> Path:
    """Each image next to its Grad-CAM overlay, captioned (e.g. with the predicted class)."""
    path = Path(path)
    heat = np.asarray(heatmaps.cpu() if isinstance(heatmaps, torch.Tensor) else heatmaps)
    count = len(images)
    columns = min(columns, count)
    rows = math.ceil(count / columns)
    fig, axes = plt.subplots(
        rows, 2 * columns, figsize=(3.2 * columns, 1.8 * rows + 0.5), squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    for i, (image, caption) in enumerate(zip(images, captions)):
        row, col = divmod(i, columns)
        axes[row, 2 * col].imshow(image, interpolation="nearest")
        axes[row, 2 * col + 1].imshow(heatmap_overlay(image, heat[i]), interpolation="nearest")
        axes[row, 2 * col].set_title(caption, fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
