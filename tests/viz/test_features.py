"""Feature-map grids, t-SNE scatters and Grad-CAM figures are written as PNG files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pixelwise.viz.features import (
    gradcam_figure,
    heatmap_overlay,
    plot_feature_maps,
    plot_gradcam,
    plot_tsne,
)


def test_feature_map_grid(tmp_path, check_picture):
    image = np.zeros((16, 16, 3), np.uint8)
    path = plot_feature_maps(
        torch.randn(1, 12, 8, 8), tmp_path / "maps.png", max_channels=7, image=image
    )
    check_picture(path, 300, 100)
    with pytest.raises(ValueError, match="spatial layer"):
        plot_feature_maps(torch.randn(10), tmp_path / "flat.png")


def test_tsne_scatter_per_layer(tmp_path, check_picture):
    labels = np.arange(30) % 3
    embeddings = {"stages.0": np.random.randn(30, 2), "penultimate": np.random.randn(30, 2)}
    path = plot_tsne(embeddings, labels, ["a", "b", "c"], tmp_path / "tsne.png")
    picture = check_picture(path, 600, 300)
    assert picture.width > picture.height  # two panels side by side


def test_gradcam_figure_and_overlay(tmp_path, check_picture):
    images = [np.full((8, 8, 3), 128, np.uint8) for _ in range(3)]
    heat = torch.rand(3, 8, 8)
    blended = heatmap_overlay(images[0], heat[0].numpy())
    assert blended.shape == (8, 8, 3) and blended.dtype == np.uint8
    path = plot_gradcam(images, heat, ["x", "y", "z"], tmp_path / "cam.png")
    check_picture(path, 500, 150)


def test_gradcam_and_gradcam_plusplus_side_by_side_with_a_colour_bar(tmp_path, check_picture):
    torch.manual_seed(0)
    images = [np.random.randint(0, 255, (32, 32, 3), dtype=np.uint8) for _ in range(3)]
    masks = torch.zeros(3, 32, 32, dtype=torch.bool)
    masks[:, 8:20, 8:20] = True
    fig = gradcam_figure(
        images,
        torch.rand(3, 32, 32),
        ["a", "b", "c"],
        heatmaps_plusplus=torch.rand(3, 32, 32),
        masks=masks,
    )
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:3] == ["a", "Grad-CAM", "Grad-CAM++"]
    bar = fig.axes[-1]
    assert "strongest" in bar.get_xlabel() and bar.get_xlim() == (0.0, 1.0)
    assert len(fig.axes[1].collections) == 1  # the class's mask outlined
    path = plot_gradcam(
        images,
        torch.rand(3, 32, 32),
        ["a", "b", "c"],
        tmp_path / "cam.png",
        heatmaps_plusplus=torch.rand(3, 32, 32),
    )
    picture = check_picture(path, 900, 300)
    assert picture.width <= 1100  # six panels a row at most: the report's width
