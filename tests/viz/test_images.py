"""Undoing normalisation and tiling panels."""

from __future__ import annotations

import numpy as np
import torch

from pixelwise.viz.images import grid, hstack, scale_to, to_display


def test_to_display_undoes_normalisation():
    image = torch.full((3, 2, 2), 0.0)  # the mean itself
    shown = to_display(image, mean=[0.5, 0.25, 1.0], std=[0.2, 0.2, 0.2])
    assert shown.shape == (2, 2, 3) and shown.dtype == np.uint8
    assert shown[0, 0].tolist() == [128, 64, 255]
    grey = to_display(torch.tensor([[[0.0, 2.0]]]))  # no statistics: stretched to 0..255
    assert grey.shape == (1, 2, 3) and grey[0, 1].tolist() == [255, 255, 255]


def test_panels_and_grids():
    panel = np.zeros((4, 6, 3), np.uint8)
    assert scale_to(panel, 12, nearest=True).shape == (8, 12, 3)
    assert hstack([panel, panel], gap=2).shape == (4, 14, 3)
    assert grid([panel] * 3, columns=2, gap=1).shape == (9, 13, 3)


def test_scale_to_width_keeps_the_aspect():
    from pixelwise.viz.images import scale_to_width

    assert scale_to_width(np.zeros((240, 320, 3), np.uint8), 200).shape == (150, 200, 3)
    assert scale_to_width(np.zeros((12, 12, 3), np.uint8), 200, nearest=True).shape == (200, 200, 3)
