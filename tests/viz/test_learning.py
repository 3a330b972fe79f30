"""The learning GIF: fixed validation images, one frame per recorded epoch, thumbnails
large enough to see, the epoch and the validation mIoU on every frame."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from pixelwise.config import load_config
from pixelwise.experiment import LearningGifRecorder
from pixelwise.viz.learning import LearningGif


def per_pixel_model(classes: int = 3, channels: int = 1) -> nn.Module:
    return nn.Sequential(nn.Conv2d(channels, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, classes, 1))


def test_frames_per_epoch_and_an_animated_gif(tmp_path, check_picture):
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
        gif.record(model, epoch, miou=0.25 * epoch)
        assert model.training  # the loop's mode is left as it was
    assert gif.captions == [
        "epoch 1   val mIoU 0.250",
        "epoch 2   val mIoU 0.500",
        "epoch 3   val mIoU 0.750",
    ]
    path = gif.save(tmp_path / "learning.gif")
    animation = check_picture(path, 2 * (3 * 200), 4 * 200, frames=3)  # 2 columns, 8 rows
    assert animation.width <= 1300  # shown at (nearly) its own size in the report
    assert animation.info.get("loop") == 0


def test_thumbnails_are_200_px_wide_whatever_the_shape():
    torch.manual_seed(0)
    images, masks = torch.randn(2, 3, 240, 320), torch.randint(0, 2, (2, 240, 320))
    gif = LearningGif((images, masks), num_classes=2)
    assert gif.pictures[0].shape[:2] == (150, 200) and gif.truths[0].shape[:2] == (150, 200)
    tall = LearningGif((torch.randn(1, 3, 64, 16), torch.zeros(1, 64, 16, dtype=torch.long)), 2)
    assert tall.pictures[0].shape[:2] == (800, 200)


def test_dataset_colours_and_the_ignored_white_in_the_legend():
    masks = torch.randint(0, 2, (2, 8, 8))
    images = torch.randn(2, 1, 8, 8)
    plain = LearningGif((images, masks), num_classes=2, class_names=["sky", "road"])
    assert [name for name, _ in plain.legend_entries()] == ["sky", "road"]
    masks[:, 0] = 255
    colors = [(128, 128, 128), (128, 64, 128)]
    gif = LearningGif((images, masks), num_classes=2, class_names=["sky", "road"], colors=colors)
    assert gif.legend_entries() == [
        ("sky", (128, 128, 128)),
        ("road", (128, 64, 128)),
        ("ignored", (255, 255, 255)),
    ]
    gif.record(per_pixel_model(2), 1)
    assert gif.captions == ["epoch 1"]  # no mIoU known: none written
    frame = np.asarray(gif.frames[0].convert("RGB"))
    assert (frame == [128, 64, 128]).all(axis=-1).any()  # the class colours stay exact


def test_the_training_hook_passes_the_epoch_miou_and_the_config_colours():
    cfg = load_config(
        "digits",
        [
            "task=segmentation",
            "data.format=digits_segmentation",
            "data.class_names=[bg, a, b]",
            "data.class_colors=[[1, 2, 3], [4, 5, 6], [7, 8, 9]]",
            "train.gif_images=2",
        ],
    )
    val = TensorDataset(torch.randn(4, 3, 8, 8), torch.randint(0, 3, (4, 8, 8)))
    splits = SimpleNamespace(datasets={"val": val}, num_classes=3, class_names=["bg", "a", "b"])
    recorder = LearningGifRecorder(cfg)
    model = per_pixel_model(3, channels=3)
    recorder(
        SimpleNamespace(epoch=1, model=model, record={"val/miou": 0.4}, splits=splits, run=None)
    )
    assert recorder.gif is not None
    assert recorder.gif.captions == ["epoch 1   val mIoU 0.400"]
    assert recorder.gif.colors.tolist() == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]


def test_a_batch_works_too_and_misuse_is_explained(tmp_path):
    images, masks = torch.randn(4, 1, 8, 8), torch.randint(0, 2, (4, 8, 8))
    gif = LearningGif((images, masks), num_classes=2, num_images=2)
    assert len(gif.images) == 2
    with pytest.raises(ValueError, match="no frames"):
        gif.save(tmp_path / "empty.gif")
    with pytest.raises(ValueError, match="for segmentation"):
        LearningGif((images, torch.zeros(4, dtype=torch.long)), num_classes=2)
