"""CIFAR-10 and CIFAR-100 from their original python-pickle batches, read by torchvision.

Layout (what ``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz`` unpack to)::

    root/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}
    root/cifar-100-python/{train, test, meta}

``data.root`` may be the folder holding ``cifar-10-batches-py`` or that folder itself.
torchvision's parsers check the MD5 of every batch; here they check only that the files
exist, so that the tests' tiny batches in the same format load too (nothing downloads).
The dataset's own train/test split is kept; val is carved from train.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset
from torchvision import datasets, tv_tensors

from ..config import DataConfig
from .base import RawDataset, require_root
from .io import DataError, convert_channels
from .splits import carve_missing_splits


class _LocalCIFAR10(datasets.CIFAR10):
    train_list = [[name, None] for name, _ in datasets.CIFAR10.train_list]
    test_list = [[name, None] for name, _ in datasets.CIFAR10.test_list]
    meta = {**datasets.CIFAR10.meta, "md5": None}


class _LocalCIFAR100(datasets.CIFAR100):
    train_list = [[name, None] for name, _ in datasets.CIFAR100.train_list]
    test_list = [[name, None] for name, _ in datasets.CIFAR100.test_list]
    meta = {**datasets.CIFAR100.meta, "md5": None}


class TensorImages(RawDataset):
    """Decoded uint8 images held in one (N, C, H, W) tensor, with class labels."""

    def __init__(self, images: torch.Tensor, labels: list[int], in_channels: int, name: str):
        super().__init__()
        self.images = images
        self.labels = labels
        self.in_channels = in_channels
        self.name = name

    def __len__(self) -> int:
        return len(self.labels)

    def load(self, index: int) -> tuple[tv_tensors.Image, int]:
        image = convert_channels(self.images[index], self.in_channels)
        return tv_tensors.Image(image), self.labels[index]

    def describe(self, index: int) -> str:
        return f"{self.name}[{index}]"


def _build(parser: type[datasets.CIFAR10], cfg: DataConfig, seed: int, split_file: Path | None):
    root = require_root(cfg, f"{parser.base_folder}/")
    if root.name == parser.base_folder:
        root = root.parent
    folder = root / parser.base_folder
    expected = [name for name, _ in parser.train_list + parser.test_list] + [
        parser.meta["filename"]
    ]
    missing = [name for name in expected if not (folder / name).is_file()]
    if missing:
        raise DataError(
            f"data.root={cfg.root}: {folder} lacks {', '.join(missing)} (expected the "
            f"unpacked python-pickle release: {', '.join(expected)})"
        )
    own: dict[str, Dataset] = {}
    class_names: list[str] = []
    for split, train in ((cfg.train_split, True), (cfg.test_split, False)):
        try:
            parsed = parser(str(root), train=train, download=False)
        except Exception as err:  # pickle or shape errors from a damaged batch
            raise DataError(f"{folder}: cannot parse the CIFAR batches ({err})") from err
        images = torch.from_numpy(parsed.data).permute(0, 3, 1, 2).contiguous()
        name = f"{parser.base_folder}/{'train' if train else 'test'}"
        own[split] = TensorImages(images, list(map(int, parsed.targets)), cfg.in_channels, name)
        class_names = list(parsed.classes)
    return carve_missing_splits(own, cfg, seed, split_file), class_names


def build_cifar10(cfg: DataConfig, seed: int, split_file: Path | None):
    return _build(_LocalCIFAR10, cfg, seed, split_file)


def build_cifar100(cfg: DataConfig, seed: int, split_file: Path | None):
    return _build(_LocalCIFAR100, cfg, seed, split_file)
