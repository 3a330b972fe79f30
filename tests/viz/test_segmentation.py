"""Class colours, colourised masks, overlays and the side-by-side figure."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from pixelwise.viz.segmentation import (
    background_index,
    colorize,
    overlay,
    palette,
    plot_overlays,
    plot_segmentation,
)


def test_palette_is_pascal_voc():
    colors = palette(6)
    assert colors.shape == (6, 3) and colors.dtype == np.uint8
    assert colors[:5].tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0], [0, 0, 128]]
    assert len({tuple(c) for c in palette(21)}) == 21  # every class its own colour


def test_colorize_marks_ignored_pixels_white():
    mask = torch.tensor([[0, 1], [2, 255]])
    painted = colorize(mask, palette(3))
    assert painted.shape == (2, 2, 3)
    assert painted[0, 1].tolist() == [128, 0, 0]
    assert painted[1, 1].tolist() == [255, 255, 255]


def test_overlay_blends_classes_and_leaves_background_alone():
    image = np.full((2, 2, 3), 100, np.uint8)
    mask = np.array([[0, 1], [1, 0]])
    blended = overlay(image, mask, palette(2), alpha=0.5, background=0)
    assert blended[0, 0].tolist() == [100, 100, 100]
    assert blended[0, 1].tolist() == [114, 50, 50]  # (100 + 128) / 2, (100 + 0) / 2
    assert background_index(["background", "cat"]) == 0
    assert background_index(["sky", "road"]) is None


def test_side_by_side_and_overlay_figures_are_written(tmp_path):
    images = torch.randn(3, 3, 16, 16)
    targets = torch.randint(0, 4, (3, 16, 16))
    predictions = torch.randint(0, 4, (3, 16, 16))
    names = ["background", "a", "b", "c"]
    path = plot_segmentation(images, targets, predictions, names, tmp_path / "seg.png")
    with Image.open(path) as picture:
        assert picture.width > 400 and picture.height > 300
    path = plot_overlays(images, predictions, names, tmp_path / "overlay.png", columns=2)
    assert Image.open(path).format == "PNG"
