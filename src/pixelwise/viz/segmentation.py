"""Segmentation pictures: a colour per class, image | truth | prediction, overlays.

Colours are the dataset's (``data.class_colors``, carried by the model card as
``class_colors``) or else the PASCAL VOC palette (``viz.colors``); pixels labelled
``ignore_index`` are white, and the legend names that white "ignored" where the masks
have such pixels. A class named "background" stays transparent in overlays.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from .colors import IGNORE_COLOR, IGNORE_LABEL, class_colors, palette  # noqa: E402
from .figures import caption_height, panel_figure, panel_figure_width, save_figure  # noqa: E402
from .images import to_display  # noqa: E402

__all__ = ["IGNORE_COLOR", "palette"]  # re-exported: callers know them from here

Colors = np.ndarray | Sequence[Sequence[int]] | None
LEGEND_FONT_SIZE = 9
LEGEND_COLUMNS = 6


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


def legend_handles(
    class_names: Sequence[str], colors: np.ndarray, present: set[int], ignored: bool = False
) -> list:
    """A colour patch per class in ``present``, and the white of ignored pixels if any."""
    handles = [
        Patch(facecolor=colors[i] / 255.0, edgecolor="black", linewidth=0.5, label=name)
        for i, name in enumerate(class_names)
        if i in present
    ]
    if ignored:
        white = np.asarray(IGNORE_COLOR) / 255.0
        handles.append(Patch(facecolor=white, edgecolor="black", linewidth=0.5, label=IGNORE_LABEL))
    return handles


def _values(mask: torch.Tensor | np.ndarray) -> set[int]:
    return set(
        np.unique(np.asarray(mask.cpu() if isinstance(mask, torch.Tensor) else mask)).tolist()
    )


def legend_columns(handles: list, width: float) -> int:
    """As many legend entries per line as fit in ``width`` inches (a swatch, the label)."""
    longest = max((len(h.get_label()) for h in handles), default=1)
    entry = 0.55 + longest * LEGEND_FONT_SIZE * 0.6 / 72  # inches; 0.6 em per character
    return max(1, min(len(handles), LEGEND_COLUMNS, int(width / entry)))


def legend_height(handles: list, width: float) -> float:
    """Inches a bottom legend of ``handles`` needs in a figure ``width`` inches wide."""
    if not handles:
        return 0.0
    lines = math.ceil(len(handles) / legend_columns(handles, width))
    return caption_height(lines, LEGEND_FONT_SIZE + 2) + 0.1


def _add_legend(fig: Figure, handles: list) -> None:
    if handles:
        fig.legend(
            handles=handles,
            loc="lower center",
            ncol=legend_columns(handles, fig.get_figwidth()),
            fontsize=LEGEND_FONT_SIZE,
            frameon=False,
            borderaxespad=0.3,
        )


def segmentation_figure(
    images: torch.Tensor,
    targets: torch.Tensor,
    predictions: torch.Tensor,
    class_names: Sequence[str],
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    with_overlay: bool = True,
    title: str | None = None,
    colors: Colors = None,
) -> Figure:
    """One row per image: image | ground truth | prediction [| overlay], and a legend of
    the classes shown (and of the ignored white, where the truth has ignored pixels)."""
    num_classes = len(class_names)
    palette_ = class_colors(num_classes, colors)
    background = background_index(class_names)
    columns = ["image", "ground truth", "prediction"] + (["overlay"] if with_overlay else [])
    present = set().union(*(_values(m) for m in (*targets, *predictions)))
    classes = {v for v in present if 0 <= v < num_classes}
    handles = legend_handles(class_names, palette_, classes, ignored=bool(present - classes))
    height, width = images.shape[-2:]
    header = caption_height(1, 10) + (caption_height(1, 12) if title else 0.0)
    figure_width = panel_figure_width(len(columns))
    fig, axes = panel_figure(
        len(images),
        len(columns),
        height / width,
        top=header,
        bottom=legend_height(handles, figure_width),
    )
    for row, image in enumerate(images):
        picture = to_display(image, mean, std)
        panels = [picture, colorize(targets[row], palette_), colorize(predictions[row], palette_)]
        if with_overlay:
            panels.append(overlay(picture, predictions[row], palette_, background=background))
        for col, panel in enumerate(panels):
            axes[row, col].imshow(panel, interpolation="nearest")
            if row == 0:
                axes[row, col].set_title(columns[col], fontsize=10, pad=3)
    _add_legend(fig, handles)
    if title:
        fig.suptitle(title, fontsize=12, y=1 - 0.02 / fig.get_figheight(), va="top")
    return fig


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
    colors: Colors = None,
) -> Path:
    """``segmentation_figure`` as a PNG. ``images`` are normalised (N, C, H, W);
    ``targets`` and ``predictions`` (N, H, W) indices; ``colors`` the card's
    ``class_colors`` (default: the VOC palette)."""
    fig = segmentation_figure(
        images, targets, predictions, class_names, mean, std, with_overlay, title, colors
    )
    return save_figure(fig, path)


def plot_overlays(
    images: torch.Tensor,
    masks: torch.Tensor,
    class_names: Sequence[str],
    path: str | Path,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    columns: int = 4,
    alpha: float = 0.5,
    colors: Colors = None,
) -> Path:
    """A grid of images with their masks (predicted or true) blended in, and a legend.
    Ignored pixels are left unpainted, so the legend lists classes only."""
    num_classes = len(class_names)
    palette_ = class_colors(num_classes, colors)
    background = background_index(class_names)
    count = len(images)
    columns = max(1, min(columns, count))
    rows = math.ceil(count / columns)
    present = set().union(*(_values(m) for m in masks))
    handles = legend_handles(class_names, palette_, {v for v in present if 0 <= v < num_classes})
    height, width = images.shape[-2:]
    bottom = legend_height(handles, panel_figure_width(columns))
    fig, axes = panel_figure(rows, columns, height / width, bottom=bottom)
    for i, ax in enumerate(axes.flat):
        if i >= count:
            ax.set_axis_off()
            continue
        picture = to_display(images[i], mean, std)
        ax.imshow(overlay(picture, masks[i], palette_, alpha, background), interpolation="nearest")
    _add_legend(fig, handles)
    return save_figure(fig, path)
