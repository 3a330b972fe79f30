"""pixelwise.data's datasets on their own: MaskFolder, ImageFolder and FormatDataset in a
plain DataLoader, with pixelwise's joint image/mask transforms or a user's own."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.transforms import v2

from pixelwise.config import ConfigError
from pixelwise.data import DataError, FormatDataset, ImageFolder, MaskFolder

NUM_CLASSES = 3


@pytest.fixture
def leaves(tmp_path):
    """root/images/*.png and root/masks/*.png: red = 80 * class, so image and mask can be
    checked for moving together; columns 0-3 class 0, 4-7 class 1, 8-11 class 2."""
    root = tmp_path / "leaves"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    mask = np.repeat(np.arange(NUM_CLASSES), 4)[None, :].repeat(10, axis=0).astype(np.uint8)
    for i in range(6):
        rolled = np.roll(mask, i, axis=1)
        image = np.zeros((10, 12, 3), np.uint8)
        image[..., 0] = rolled * 80
        image[..., 1] = 10 * i
        Image.fromarray(image).save(root / "images" / f"leaf{i}.png")
        Image.fromarray(rolled).save(root / "masks" / f"leaf{i}.png")
    return root


def test_mask_folder_in_a_plain_data_loader(leaves):
    keys = {"num_classes": NUM_CLASSES, "image_size": [8, 8], "test_fraction": 0.0}
    train = MaskFolder(leaves, "train", **keys)
    assert train.classes == ["0", "1", "2"] and train.task == "segmentation"
    images, masks = next(iter(DataLoader(train, batch_size=2, shuffle=True)))
    assert images.shape == (2, 3, 8, 8) and images.dtype == torch.float32
    assert masks.shape == (2, 8, 8) and masks.dtype == torch.int64
    assert set(masks.unique().tolist()) <= {0, 1, 2, 255}  # 255: padding of a random crop
    val = MaskFolder(leaves, "val", **keys)  # carved from the pool by the seed
    assert len(val) >= 1 and len(train) + len(val) == 6


def test_the_training_preset_moves_image_and_mask_together(leaves):
    flipped = MaskFolder(
        leaves,
        num_classes=NUM_CLASSES,
        image_size=[10, 12],
        augment="light",
        hflip=1.0,
        normalize=False,
        val_fraction=0.0,
        test_fraction=0.0,
    )
    for image, mask in flipped:
        assert torch.equal((image[0] * 255).round().long(), mask * 80)
    first_image, first_mask = flipped[0]
    raw = np.asarray(Image.open(leaves / "masks" / "leaf0.png"))
    assert torch.equal(first_mask, torch.from_numpy(raw[:, ::-1].copy()).long())


def test_a_users_own_v2_transform_gets_image_and_mask(leaves):
    own = v2.Compose(
        [v2.RandomVerticalFlip(p=1.0), v2.CenterCrop(6), v2.ToDtype(torch.float32, scale=True)]
    )
    data = MaskFolder(leaves, num_classes=NUM_CLASSES, transform=own, test_fraction=0.0)
    image, mask = data[0]
    assert image.shape == (3, 6, 6) and mask.shape == (6, 6)
    assert torch.equal((image[0] * 255).round().long(), mask * 80)


def test_image_folder_and_any_format(tmp_path):
    for c, name in enumerate(["cat", "dog"]):
        for i in range(5):
            pixels = np.full((9, 9, 3), 40 * c + i, np.uint8)
            (tmp_path / name).mkdir(exist_ok=True)
            Image.fromarray(pixels).save(tmp_path / name / f"{i}.png")
    train = ImageFolder(tmp_path, image_size=[4, 4], val_fraction=0.2, test_fraction=0.2)
    images, labels = next(iter(DataLoader(train, batch_size=4)))
    assert train.classes == ["cat", "dog"] and images.shape == (4, 3, 4, 4)
    assert labels.dtype == torch.int64
    digits = FormatDataset("digits", "test", in_channels=1, image_size=[8, 8])
    image, label = digits[0]
    assert image.shape == (1, 8, 8) and len(digits.classes) == 10 and 0 <= int(label) < 10


def test_mistakes_are_one_line_naming_the_key_or_split(leaves):
    with pytest.raises(ConfigError, match="'data.image_size'"):
        MaskFolder(leaves, num_classes=NUM_CLASSES, image_size=[0, 8])
    with pytest.raises(ConfigError, match="unknown key 'data.mask_sufix'"):
        MaskFolder(leaves, num_classes=NUM_CLASSES, mask_sufix="_m")
    with pytest.raises(DataError, match="no split 'holdout'.*train, val, test"):
        MaskFolder(leaves, "holdout", num_classes=NUM_CLASSES)
