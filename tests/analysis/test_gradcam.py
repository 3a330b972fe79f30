"""Grad-CAM points at the evidence, for the predicted or a chosen class."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pixelwise.analysis import default_gradcam_layer, grad_cam
from pixelwise.models import create_model


def blob_detector() -> nn.Sequential:
    """Class 0 = mean brightness, class 1 = mean darkness: evidence sits where the pixels are."""
    conv = nn.Conv2d(1, 2, 1, bias=False)
    head = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, -1.0]).reshape(2, 1, 1, 1))
        head.weight.copy_(torch.eye(2))
    return nn.Sequential(conv, nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten(), head)


def test_heatmap_peaks_on_the_bright_blob():
    images = torch.zeros(2, 1, 12, 12)
    images[0, 0, 1:4, 1:4] = 1.0  # top left
    images[1, 0, 8:11, 7:10] = 1.0  # bottom right
    cam = grad_cam(blob_detector(), images, layer="0")
    assert cam.heatmaps.shape == (2, 12, 12)
    assert cam.classes.tolist() == [0, 0]
    assert cam.heatmaps.min() >= 0 and cam.heatmaps.max() <= 1
    assert cam.heatmaps[0, 1:4, 1:4].mean() > 0.9 and cam.heatmaps[0, 8:, 8:].max() < 0.1
    assert cam.heatmaps[1, 8:11, 7:10].mean() > 0.9 and cam.heatmaps[1, :4, :4].max() < 0.1
    # The conv's own output (before the in-place ReLU) is what was explained.
    assert cam.layer == "0"


def test_default_layer_is_the_last_stage_and_targets_are_honoured():
    torch.manual_seed(0)
    model = create_model("small_cnn", num_classes=4, in_channels=1, width=4)
    model.train()
    assert default_gradcam_layer(model) == "stages.2"
    images = torch.randn(3, 1, 16, 16)
    cam = grad_cam(model, images)
    assert cam.heatmaps.shape == (3, 16, 16)
    assert model.training  # mode restored
    with torch.no_grad():
        model.eval()
        assert cam.classes.tolist() == model(images).argmax(1).tolist()
    chosen = grad_cam(model, images, target_classes=[2, 2, 2])
    assert chosen.classes.tolist() == [2, 2, 2]
    assert torch.all((chosen.probabilities >= 0) & (chosen.probabilities <= 1))


def test_layer_without_a_spatial_map_is_refused():
    model = create_model("small_cnn", num_classes=4, in_channels=1, width=4)
    with pytest.raises(ValueError, match="Grad-CAM needs a layer with an \\(N, C, H, W\\) output"):
        grad_cam(model, torch.randn(1, 1, 16, 16), layer="fc")
