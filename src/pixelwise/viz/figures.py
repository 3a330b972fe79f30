"""Grids of picture panels laid out in inches, and saving a figure as a PNG.

``plt.subplots`` gives every axes the same box whatever the image's shape, so a 3:4
CamVid frame in a square box leaves a band of white above and below it in every row,
and ``tight_layout`` places captions before the images' aspect shrinks their axes,
so a two-line caption ran into the row above. Here every panel's box has the image's
own aspect ratio and every caption its own reserved height: the gaps are ``gap``
inches whatever the pictures.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

LINE_HEIGHT = 1.35  # a caption line, in units of its font size
POINTS_PER_INCH = 72


def caption_height(lines: int, font_size: float) -> float:
    """Inches taken by ``lines`` lines of text at ``font_size`` points, with a small pad."""
    return 0.0 if lines <= 0 else lines * font_size * LINE_HEIGHT / POINTS_PER_INCH + 0.04


def panel_figure_width(columns: int, panel_width: float = 2.6, gap: float = 0.08) -> float:
    """Inches across ``panel_figure``'s columns and gaps."""
    return columns * panel_width + (columns + 1) * gap


def panel_figure(
    rows: int,
    columns: int,
    aspect: float,
    panel_width: float = 2.6,
    caption_lines: int = 0,
    font_size: float = 8,
    top: float = 0.0,
    bottom: float = 0.0,
    gap: float = 0.08,
) -> tuple[Figure, np.ndarray]:
    """A figure of ``rows`` x ``columns`` panels (``aspect`` = height / width) with no
    ticks; ``caption_lines`` of ``font_size`` text reserved above each panel, ``top``
    inches above the first row (column titles, a title) and ``bottom`` below the last
    (a legend). Returns the figure and a (rows, columns) array of axes."""
    caption = caption_height(caption_lines, font_size)
    panel_height = panel_width * aspect
    row_height = caption + panel_height
    width = panel_figure_width(columns, panel_width, gap)
    height = top + rows * row_height + (rows + 1) * gap + bottom
    fig = plt.figure(figsize=(width, height))
    axes = np.empty((rows, columns), dtype=object)
    for row in range(rows):
        panel_top = top + gap + row * (row_height + gap) + caption  # inches from the top
        for col in range(columns):
            left = gap + col * (panel_width + gap)
            box = (
                left / width,
                (height - panel_top - panel_height) / height,
                panel_width / width,
                panel_height / height,
            )
            ax = fig.add_axes(box)
            ax.set_xticks([])
            ax.set_yticks([])
            axes[row, col] = ax
    return fig, axes


def save_figure(fig: Figure, path: str | Path, dpi: int = 90) -> Path:
    """Write ``fig`` as a PNG (folders made as needed) and free it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, with an ellipsis where it was cut."""
    return text if len(text) <= limit else text[: max(1, limit - 1)] + "…"
