"""data.loader=tensor: whole-batch flips and translations equal torchvision's, flips
alternate by epoch, and settings it cannot honour are refused in one line."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from data_fixtures import make_config
from torch.utils.data import Dataset
from torchvision import tv_tensors

from pixelwise.config import ConfigError
from pixelwise.data import TensorLoader, build_loader
from pixelwise.data.tensor_loader import check_tensor_loader


class Pictures(Dataset):
    """Random uint8 RGB images of 6x7, labelled by index."""

    def __init__(self, count: int = 10) -> None:
        generator = torch.Generator().manual_seed(0)
        self.images = torch.randint(
            0, 256, (count, 3, 6, 7), dtype=torch.uint8, generator=generator
        )

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        return tv_tensors.Image(self.images[index]), index % 3


def loader(count: int = 10, **data) -> TensorLoader:
    cfg = make_config(
        image_size=[6, 7], batch_size=4, loader="tensor", mean=[0.5] * 3, std=[0.25] * 3, **data
    )
    return TensorLoader(Pictures(count), cfg.data, torch.device("cpu"), seed=0)


@pytest.mark.parametrize("mode", ["constant", "reflect"])
def test_a_batch_is_torchvisions_padded_crop_and_flip(mode):
    tensors = loader(crop_padding=2, crop_padding_mode=mode)
    index = torch.arange(6)
    shifts = torch.tensor([[0, 0], [4, 4], [1, 3], [2, 2], [3, 0], [0, 4]])
    flips = torch.tensor([False, True, False, True, True, False])
    batch = tensors.augment(index, shifts, flips)

    padded = F.pad(tensors.images[:6].float(), (2, 2, 2, 2), mode=mode)
    for i, ((dy, dx), flip) in enumerate(zip(shifts.tolist(), flips.tolist(), strict=True)):
        expected = padded[i, :, dy : dy + 6, dx : dx + 7]
        expected = expected.flip(-1) if flip else expected
        expected = (expected / 255 - 0.5) / 0.25
        torch.testing.assert_close(batch[i], expected)


def test_an_epoch_is_a_permutation_and_flips_alternate_by_epoch():
    tensors = loader(count=8, crop_padding=0, hflip=0.5)
    seen: dict[int, list[torch.Tensor]] = {}
    for epoch in range(2):
        tensors.generator.manual_seed(epoch)
        tensors.set_epoch(epoch)
        labels = []
        for images, targets in tensors:
            assert images.shape == (4, 3, 6, 7) and images.dtype == torch.float32
            for image in images:
                # which image: the one whose pixels (or mirror) match
                match = [
                    i
                    for i in range(8)
                    if torch.allclose(image, tensors.normalise(tensors.images[i : i + 1])[0])
                    or torch.allclose(
                        image, tensors.normalise(tensors.images[i : i + 1])[0].flip(-1)
                    )
                ]
                assert len(match) == 1
                seen.setdefault(match[0], []).append(image)
            labels += targets.tolist()
        assert sorted(labels) == sorted(i % 3 for i in range(8))
    for i, (even, odd) in seen.items():
        assert torch.equal(even.flip(-1), odd), f"image {i} is not mirrored on the next epoch"


def test_the_same_seed_gives_the_same_batches():
    a, b = loader(crop_padding=2), loader(crop_padding=2)
    for (x, y), (u, v) in zip(a, b, strict=True):
        assert torch.equal(x, u) and torch.equal(y, v)


def test_plain_images_are_not_augmented():
    tensors = loader(crop_padding=2)
    expected = (tensors.images[:3].float() / 255 - 0.5) / 0.25
    torch.testing.assert_close(tensors.plain_images(3), expected)


@pytest.mark.parametrize(
    ("task", "data", "message"),
    [
        (
            "classification",
            {"augment": "strong"},
            "data.loader=tensor does flips and translations only (data.augment=strong sets "
            "rotation, color_jitter, random_resized_crop; use data.augment=default or light); "
            "or set data.loader=dataloader",
        ),
        (
            "classification",
            {"random_erasing": 0.5},
            "data.loader=tensor does flips and translations only (data.augment=default sets "
            "random_erasing",
        ),
        ("classification", {"hflip": 0.3}, "data.loader=tensor alternates flips (data.hflip"),
        ("segmentation", {}, "data.loader=tensor is for classification (this is segmentation)"),
        ("classification", {"sampler": "balanced"}, "draws a random order"),
    ],
)
def test_settings_it_cannot_honour_are_refused(task, data, message):
    cfg = make_config(task, loader="tensor", **data)
    with pytest.raises(ConfigError) as error:
        check_tensor_loader(cfg.data, task)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_build_loader_gives_the_tensor_loader_for_training_only():
    cfg = make_config(image_size=[6, 7], batch_size=4, loader="tensor")
    device = torch.device("cpu")
    assert isinstance(build_loader(Pictures(), cfg.data, True, device), TensorLoader)
    assert not isinstance(build_loader(Pictures(), cfg.data, False, device), TensorLoader)
