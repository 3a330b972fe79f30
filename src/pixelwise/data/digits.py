"""Embedded data with no download: scikit-learn's handwritten digits.

* ``digits``: the 1,797 8x8 digit images for classification (10 classes).
* ``digits_segmentation``: canvases with digits placed at random scales and
  positions, every pixel labelled with its digit (1..10 for 0..9) or background
  (0); deterministic from the seed. Source digits are split first, so that no
  glyph appears in two splits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torchvision import tv_tensors

from ..config import DataConfig
from .base import RawDataset
from .splits import carve_missing_splits, load_or_make_splits

DIGIT_NAMES = [str(d) for d in range(10)]


def digit_images() -> tuple[np.ndarray, np.ndarray]:
    """(N, 8, 8) uint8 images scaled from 0..16 to 0..255, and (N,) labels."""
    from sklearn.datasets import load_digits  # scikit-learn is slow to import

    bunch = load_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    return images, bunch.target.astype(np.int64)


def to_channels(image: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Repeat a 1-channel (1, H, W) image to ``in_channels``."""
    return image.expand(in_channels, *image.shape[1:]).clone() if in_channels != 1 else image


class DigitsClassification(RawDataset):
    def __init__(self, images: np.ndarray, labels: np.ndarray, in_channels: int) -> None:
        super().__init__()
        self.images = torch.from_numpy(images).unsqueeze(1)  # (N, 1, 8, 8)
        self.labels = labels.tolist()
        self.in_channels = in_channels

    def __len__(self) -> int:
        return len(self.labels)

    def load(self, index: int) -> tuple[tv_tensors.Image, int]:
        image = to_channels(self.images[index], self.in_channels)
        return tv_tensors.Image(image), self.labels[index]

    def describe(self, index: int) -> str:
        return f"digits[{index}]"


def make_digit_canvases(
    images: np.ndarray,
    labels: np.ndarray,
    count: int,
    size: tuple[int, int],
    seed: int,
    max_digits: int = 3,
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` canvases of ``size`` with 1..max_digits digits each, and their masks."""
    rng = np.random.default_rng(seed)
    height, width = size
    canvases = np.zeros((count, height, width), dtype=np.uint8)
    masks = np.zeros((count, height, width), dtype=np.uint8)
    for i in range(count):
        for _ in range(rng.integers(1, max_digits + 1)):
            k = rng.integers(len(images))
            largest = max(1, min(height, width) // 8)  # a glyph never exceeds the canvas
            scale = int(rng.integers(max(1, largest // 3), largest + 1))
            glyph = np.kron(images[k], np.ones((scale, scale), dtype=np.uint8))
            gh, gw = glyph.shape
            top, left = rng.integers(0, height - gh + 1), rng.integers(0, width - gw + 1)
            region = canvases[i, top : top + gh, left : left + gw]
            ink = glyph > 64
            region[ink] = glyph[ink]
            masks[i, top : top + gh, left : left + gw][ink] = labels[k] + 1
    return canvases, masks


class DigitSegmentation(RawDataset):
    task = "segmentation"

    def __init__(self, canvases: np.ndarray, masks: np.ndarray, in_channels: int) -> None:
        super().__init__()
        self.canvases = torch.from_numpy(canvases).unsqueeze(1)
        self.masks = torch.from_numpy(masks)
        self.in_channels = in_channels

    def __len__(self) -> int:
        return len(self.canvases)

    def load(self, index: int) -> tuple[tv_tensors.Image, tv_tensors.Mask]:
        image = to_channels(self.canvases[index], self.in_channels)
        return tv_tensors.Image(image), tv_tensors.Mask(self.masks[index])

    def load_target(self, index: int) -> tv_tensors.Mask:
        return tv_tensors.Mask(self.masks[index])

    def describe(self, index: int) -> str:
        return f"digit canvas {index}"


def build_digits(cfg: DataConfig, seed: int, split_file: Path | None) -> tuple[dict, list[str]]:
    images, labels = digit_images()
    pool = DigitsClassification(images, labels, cfg.in_channels)
    return carve_missing_splits({cfg.train_split: pool}, cfg, seed, split_file), DIGIT_NAMES


def build_digit_segmentation(
    cfg: DataConfig, seed: int, split_file: Path | None
) -> tuple[dict, list[str]]:
    images, labels = digit_images()
    names = (cfg.train_split, cfg.val_split, cfg.test_split)
    splits = load_or_make_splits(
        split_file, labels, cfg.val_fraction, cfg.test_fraction, seed, names
    )
    size = (cfg.image_size[0], cfg.image_size[1])
    datasets = {}
    for offset, (name, idx) in enumerate(sorted(splits.items())):
        count = max(1, round(cfg.num_samples * len(idx) / len(labels)))
        canvases, masks = make_digit_canvases(
            images[idx], labels[idx], count, size, seed + 1000 * offset
        )
        datasets[name] = DigitSegmentation(canvases, masks, cfg.in_channels)
    return datasets, ["background", *DIGIT_NAMES]
