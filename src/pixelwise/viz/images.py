"""From model inputs back to pictures: undo normalisation, scale, tile."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image


def to_display(
    image: torch.Tensor,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> np.ndarray:
    """A normalised (C, H, W) tensor as (H, W, 3) uint8: ``x·std + mean``, clipped.

    Without ``mean``/``std`` each image is stretched to its own min..max. One channel is
    repeated to grey RGB; more than three keep the first three.
    """
    x = image.detach().float().cpu()
    if x.dim() == 2:
        x = x[None]
    if mean is not None and std is not None:
        m = torch.tensor(list(mean), dtype=x.dtype)[:, None, None]
        s = torch.tensor(list(std), dtype=x.dtype)[:, None, None]
        x = x * s + m
    else:
        low, high = x.min(), x.max()
        x = (x - low) / (high - low).clamp_min(1e-12)
    x = x.clamp(0, 1)
    if x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    return (x[:3].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def scale_to(array: np.ndarray, longest: int, nearest: bool = False) -> np.ndarray:
    """Resize so the longer side is ``longest`` pixels (nearest for masks and small glyphs)."""
    height, width = array.shape[:2]
    factor = longest / max(height, width)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    resample = Image.Resampling.NEAREST if nearest else Image.Resampling.BILINEAR
    return np.asarray(Image.fromarray(array).resize(size, resample))


def scale_to_width(array: np.ndarray, width: int, nearest: bool = False) -> np.ndarray:
    """Resize to ``width`` pixels across, keeping the aspect ratio."""
    height, own = array.shape[:2]
    size = (width, max(1, round(height * width / own)))
    resample = Image.Resampling.NEAREST if nearest else Image.Resampling.BILINEAR
    return np.asarray(Image.fromarray(array).resize(size, resample))


def hstack(panels: Sequence[np.ndarray], gap: int = 2, fill: int = 255) -> np.ndarray:
    """Panels of equal height side by side with a ``gap``-pixel border between them."""
    height = max(p.shape[0] for p in panels)
    parts: list[np.ndarray] = []
    for i, panel in enumerate(panels):
        if i:
            parts.append(np.full((height, gap, 3), fill, np.uint8))
        pad = height - panel.shape[0]
        parts.append(np.pad(panel, ((0, pad), (0, 0), (0, 0)), constant_values=fill))
    return np.concatenate(parts, axis=1)


def grid(cells: Sequence[np.ndarray], columns: int, gap: int = 4, fill: int = 255) -> np.ndarray:
    """Equal-sized cells in rows of ``columns``."""
    rows = []
    for start in range(0, len(cells), columns):
        row = list(cells[start : start + columns])
        row += [np.full_like(cells[0], fill)] * (columns - len(row))
        rows.append(hstack(row, gap, fill))
    gap_row = np.full((gap, rows[0].shape[1], 3), fill, np.uint8)
    parts: list[np.ndarray] = []
    for i, row in enumerate(rows):
        if i:
            parts.append(gap_row)
        parts.append(row)
    return np.concatenate(parts, axis=0)
