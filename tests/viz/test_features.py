"""Feature-map grids, t-SNE scatters and Grad-CAM figures are written as PNG files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from pixelwise.viz.features import heatmap_overlay, plot_feature_maps, plot_gradcam, plot_tsne


def test_feature_map_grid(tmp_path):
    image = np.zeros((16, 16, 3), np.uint8)
    path = plot_feature_maps(
        torch.randn(1, 12, 8, 8), tmp_path / "maps.png", max_channels=7, image=image
    )
    assert Image.open(path).format == "PNG"
    with pytest.raises(ValueError, match="spatial layer"):
        plot_feature_maps(torch.randn(10), tmp_path / "flat.png")


def test_tsne_scatter_per_layer(tmp_path):
    labels = np.arange(30) % 3
    embeddings = {"stages.0": np.random.randn(30, 2), "penultimate": np.random.randn(30, 2)}
    path = plot_tsne(embeddings, labels, ["a", "b", "c"], tmp_path / "tsne.png")
    with Image.open(path) as picture:
        assert picture.width > picture.height  # two panels side by side


def test_gradcam_figure_and_overlay(tmp_path):
    images = [np.full((8, 8, 3), 128, np.uint8) for _ in range(3)]
    heat = torch.rand(3, 8, 8)
    blended = heatmap_overlay(images[0], heat[0].numpy())
    assert blended.shape == (8, 8, 3) and blended.dtype == np.uint8
    path = plot_gradcam(images, heat, ["x", "y", "z"], tmp_path / "cam.png")
    assert Image.open(path).format == "PNG"
