"""Pictures of what a network computes: feature-map grids, t-SNE scatters, Grad-CAM
and Grad-CAM++ (with a colour bar saying what the heat means)."""

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
from matplotlib.cm import ScalarMappable  # noqa: E402
from matplotlib.colors import Normalize  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from .figures import caption_height, panel_figure, save_figure  # noqa: E402

HEAT_MAP = "jet"
CAPTION_FONT_SIZE = 8
MAX_PANELS_ACROSS = 6  # 6 x 1.8 in at 90 dpi: about 1,000 px, the report's width
COLORBAR_SPACE = 0.85  # inches under the panels: the bar, its ticks and its label


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
    colored = plt.get_cmap(HEAT_MAP)(np.clip(heatmap, 0, 1))[..., :3] * 255
    return ((1 - alpha) * image.astype(np.float32) + alpha * colored).round().astype(np.uint8)


def gradcam_figure(
    images: Sequence[np.ndarray],
    heatmaps: torch.Tensor | np.ndarray,
    captions: Sequence[str],
    title: str = "Grad-CAM",
    columns: int = 4,
    heatmaps_plusplus: torch.Tensor | np.ndarray | None = None,
    masks: torch.Tensor | np.ndarray | None = None,
) -> Figure:
    """Per image: the image (captioned) | its Grad-CAM overlay [| its Grad-CAM++
    overlay], at most ``MAX_PANELS_ACROSS`` panels a row, with a colour bar for the heat. ``masks`` (segmentation) outline in white
    the pixels whose class was explained."""
    maps = [_array(heatmaps)] + (
        [_array(heatmaps_plusplus)] if heatmaps_plusplus is not None else []
    )
    outlines = _array(masks) if masks is not None else None
    names = ["Grad-CAM", "Grad-CAM++"][: len(maps)]
    per_image = 1 + len(maps)
    count = len(images)
    columns = max(1, min(columns, count, MAX_PANELS_ACROSS // per_image))
    rows = math.ceil(count / columns)
    height, width = images[0].shape[:2]
    fig, axes = panel_figure(
        rows,
        columns * per_image,
        height / width,
        panel_width=1.8,
        caption_lines=2,
        font_size=CAPTION_FONT_SIZE,
        top=caption_height(1, 11),
        bottom=COLORBAR_SPACE,
    )
    for ax in axes.flat:
        ax.set_axis_off()
    for i, (image, caption) in enumerate(zip(images, captions)):
        row, col = divmod(i, columns)
        cells = axes[row, col * per_image : (col + 1) * per_image]
        cells[0].imshow(image, interpolation="nearest")
        cells[0].set_title(caption, fontsize=CAPTION_FONT_SIZE, pad=2)
        for ax, name, heat in zip(cells[1:], names, maps):
            ax.imshow(heatmap_overlay(image, heat[i]), interpolation="nearest")
            ax.set_title(name, fontsize=CAPTION_FONT_SIZE, pad=2)
            if outlines is not None and outlines[i].any() and not outlines[i].all():
                ax.contour(outlines[i].astype(float), levels=[0.5], colors="white", linewidths=0.8)
    fig.suptitle(title, fontsize=11, y=1 - 0.03 / fig.get_figheight(), va="top")
    _colorbar(fig)
    return fig


def _array(values: torch.Tensor | np.ndarray) -> np.ndarray:
    return np.asarray(values.cpu() if isinstance(values, torch.Tensor) else values)


def _colorbar(fig: Figure) -> None:
    """A horizontal bar under the panels: what the heat colours mean."""
    width, height = fig.get_figwidth(), fig.get_figheight()
    bar_width = min(4.0, 0.8 * width)
    box = ((width - bar_width) / 2 / width, 0.42 / height, bar_width / width, 0.14 / height)
    bar = fig.colorbar(
        ScalarMappable(Normalize(0, 1), HEAT_MAP), cax=fig.add_axes(box), orientation="horizontal"
    )
    bar.set_label("evidence for the class (1 = the image's strongest)", fontsize=8)
    bar.ax.tick_params(labelsize=7)


def plot_gradcam(
    images: Sequence[np.ndarray],
    heatmaps: torch.Tensor | np.ndarray,
    captions: Sequence[str],
    path: str | Path,
    title: str = "Grad-CAM",
    columns: int = 4,
    heatmaps_plusplus: torch.Tensor | np.ndarray | None = None,
    masks: torch.Tensor | np.ndarray | None = None,
) -> Path:
    """``gradcam_figure`` as a PNG."""
    fig = gradcam_figure(images, heatmaps, captions, title, columns, heatmaps_plusplus, masks)
    return save_figure(fig, path)
