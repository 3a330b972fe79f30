"""Grad-CAM and Grad-CAM++ point at the evidence: for the predicted or a chosen class of
a classifier, and for one class's mask of a segmentation model."""

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


def pixel_segmenter() -> nn.Sequential:
    """Per pixel: class 0 where the pixel is bright (> 0), class 1 where it is dark; the
    ReLU's output is one channel per class, >= 0 as Grad-CAM++ expects."""
    conv = nn.Conv2d(1, 2, 1, bias=False)
    head = nn.Conv2d(2, 2, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, -1.0]).reshape(2, 1, 1, 1))
        head.weight.copy_(torch.eye(2).reshape(2, 2, 1, 1))
    return nn.Sequential(conv, nn.ReLU(), head)


def two_blobs() -> torch.Tensor:
    images = torch.zeros(2, 1, 12, 12)
    images[0, 0, 1:4, 1:4] = 1.0  # top left
    images[1, 0, 8:11, 7:10] = 1.0  # bottom right
    return images


def test_heatmaps_peak_on_the_bright_blob():
    cam = grad_cam(blob_detector(), two_blobs(), layer="0")
    assert cam.classes.tolist() == [0, 0]
    for maps in (cam.heatmaps, cam.heatmaps_plusplus):
        assert maps.shape == (2, 12, 12)
        assert maps.min() >= 0 and maps.max() <= 1
        assert maps[0, 1:4, 1:4].mean() > 0.9 and maps[0, 8:, 8:].max() < 0.1
        assert maps[1, 8:11, 7:10].mean() > 0.9 and maps[1, :4, :4].max() < 0.1
    # The conv's own output (before the in-place ReLU) is what was explained.
    assert cam.layer == "0" and cam.masks is None and cam.coverage is None


def test_default_layer_keeps_a_map_of_at_least_4x4_positions():
    torch.manual_seed(0)
    model = create_model("small_cnn", num_classes=4, in_channels=1, width=4)
    model.train()
    # At 16 x 16 the last stage is 2 x 2 (a blur once upsampled); the one before is 4 x 4.
    assert default_gradcam_layer(model, (1, 16, 16)) == "stages.1"
    assert default_gradcam_layer(model, (1, 64, 64)) == "stages.2"
    images = torch.randn(3, 1, 16, 16)
    cam = grad_cam(model, images)
    assert cam.layer == "stages.1" and cam.heatmaps.shape == (3, 16, 16)
    assert all(len(m.unique()) > 16 for m in cam.heatmaps_plusplus)  # not uniform
    assert model.training  # mode restored
    with torch.no_grad():
        model.eval()
        assert cam.classes.tolist() == model(images).argmax(1).tolist()
    chosen = grad_cam(model, images, target_classes=[2, 2, 2])
    assert chosen.classes.tolist() == [2, 2, 2]
    assert torch.all((chosen.probabilities >= 0) & (chosen.probabilities <= 1))


def test_default_layer_of_segmentation_models_is_in_the_deep_part():
    unet = create_model("unet", num_classes=3, encoder="resnet18")
    assert default_gradcam_layer(unet, (3, 64, 64)) == "encoder.layer3"  # layer4 is 2 x 2
    assert default_gradcam_layer(unet, (3, 128, 128)) == "encoder.layer4"


def test_segmentation_cam_explains_one_class_over_its_predicted_pixels():
    images = two_blobs() * 2 - 1  # blobs +1 (class 0), the rest -1 (class 1)
    bright = grad_cam(pixel_segmenter(), images, layer="1", target_classes=[0, 0])
    assert torch.equal(bright.masks, images[:, 0] > 0)  # the pixels whose logits were summed
    assert bright.coverage.tolist() == pytest.approx([9 / 144, 9 / 144])
    for maps in (bright.heatmaps, bright.heatmaps_plusplus):
        assert maps[0, 1:4, 1:4].min() > 0.9 and maps[0, 6:, 6:].max() < 0.1
        assert maps[1, 8:11, 7:10].min() > 0.9 and maps[1, :4, :4].max() < 0.1
    assert torch.all(bright.probabilities > 0.5)  # mean over the class's own pixels
    dark = grad_cam(pixel_segmenter(), images, layer="1", target_classes=1)
    for maps in (dark.heatmaps, dark.heatmaps_plusplus):
        assert maps[0, 6:, 6:].min() > 0.9 and maps[0, 1:4, 1:4].max() < 0.1


def test_segmentation_default_class_is_the_largest_but_not_the_background():
    images = two_blobs() * 2 - 1
    assert grad_cam(pixel_segmenter(), images, layer="0").classes.tolist() == [1, 1]
    skipped = grad_cam(pixel_segmenter(), images, layer="0", skip_class=1)
    assert skipped.classes.tolist() == [0, 0]
    only = grad_cam(pixel_segmenter(), -torch.ones(1, 1, 8, 8), layer="0", skip_class=1)
    assert only.classes.tolist() == [1]  # nothing else predicted: the background it is


def test_layer_without_a_spatial_map_and_bad_classes_are_refused():
    model = create_model("small_cnn", num_classes=4, in_channels=1, width=4)
    with pytest.raises(ValueError, match="Grad-CAM needs a layer with an \\(N, C, H, W\\) output"):
        grad_cam(model, torch.randn(1, 1, 16, 16), layer="fc")
    with pytest.raises(ValueError, match="one class index per image, each below 4"):
        grad_cam(model, torch.randn(2, 1, 16, 16), target_classes=[7, 0])
