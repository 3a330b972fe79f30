"""The learning GIF: fixed validation images, one frame per recorded epoch."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils.data import TensorDataset

from pixelwise.viz.learning import LearningGif


def per_pixel_model(classes: int = 3) -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, classes, 1))


def test_frames_per_epoch_and_an_animated_gif(tmp_path):
    torch.manual_seed(0)
    images, masks = torch.randn(20, 1, 12, 12), torch.randint(0, 3, (20, 12, 12))
    gif = LearningGif(TensorDataset(images, masks), num_classes=3, class_names=["bg", "a", "b"])
    assert len(gif.images) == 16  # the default: 16 images spread over the split
    model = per_pixel_model()
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for epoch in range(1, 4):
        loss = nn.functional.cross_entropy(model(images), masks)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        gif.record(model, epoch)
        assert model.training  # the loop's mode is left as it was
    path = gif.save(tmp_path / "learning.gif")
    with Image.open(path) as animation:
        assert animation.format == "GIF"
        assert animation.n_frames == 3
        assert animation.info.get("loop") == 0


def test_a_batch_works_too_and_misuse_is_explained(tmp_path):
    images, masks = torch.randn(4, 1, 8, 8), torch.randint(0, 2, (4, 8, 8))
    gif = LearningGif((images, masks), num_classes=2, num_images=2)
    assert len(gif.images) == 2
    with pytest.raises(ValueError, match="no frames"):
        gif.save(tmp_path / "empty.gif")
    with pytest.raises(ValueError, match="for segmentation"):
        LearningGif((images, torch.zeros(4, dtype=torch.long)), num_classes=2)
