"""Curves and confusion matrices keep their signatures and write PNG files."""

from __future__ import annotations

import numpy as np
from PIL import Image

from pixelwise.viz.plots import plot_confusion_matrix, plot_curves


def test_curves_and_confusion_matrix(tmp_path):
    records = [
        {
            "epoch": e,
            "lr": 0.1 / e,
            "train/loss": 1.0 / e,
            "val/loss": 1.2 / e,
            "val/accuracy": 0.5 + e / 10,
        }
        for e in range(1, 4)
    ]
    assert Image.open(plot_curves(records, tmp_path / "curves.png")).format == "PNG"
    matrix = np.array([[5, 1], [0, 4]])
    path = plot_confusion_matrix(
        matrix, ["cat", "dog"], tmp_path / "cm.png", normalize=True, title="val"
    )
    assert Image.open(path).format == "PNG"
