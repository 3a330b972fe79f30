"""Datasets, transforms and loaders.

``build_datasets(cfg, run_dir)`` reads the configured format into raw splits (each
item an uint8 ``tv_tensors.Image`` and an int label or ``tv_tensors.Mask``) and wraps
them with the train or eval transform. A format is a function
``(DataConfig, seed, split_file) -> (datasets by split, class names)`` in ``FORMATS``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..config import DataConfig, ExperimentConfig
from . import digits
from .transforms import build_transform

FormatBuilder = Callable[[DataConfig, int, Path | None], tuple[dict[str, Dataset], list[str]]]

FORMATS: dict[str, FormatBuilder] = {
    "digits": digits.build_digits,
    "digits_segmentation": digits.build_digit_segmentation,
}

SPLITS_FILE = "splits.json"


class TransformedDataset(Dataset):
    """A raw split with its transform; targets leave as int64 tensors."""

    def __init__(self, raw: Dataset, transform: Callable | None) -> None:
        self.raw = raw
        self.transform = transform

    def __len__(self) -> int:
        return len(self.raw)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, target = self.raw[index]
        if self.transform is not None:
            image, target = self.transform(image, target)
        return image.as_subclass(torch.Tensor), torch.as_tensor(target).long()


@dataclass
class DataSplits:
    datasets: dict[str, TransformedDataset]
    class_names: list[str]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def build_datasets(cfg: ExperimentConfig, run_dir: Path | None = None) -> DataSplits:
    data = cfg.data
    if data.format not in FORMATS:
        raise ValueError(
            f"data.format: unknown format {data.format!r} (valid: {', '.join(FORMATS)})"
        )
    split_file = run_dir / SPLITS_FILE if run_dir is not None else None
    raw, class_names = FORMATS[data.format](data, cfg.seed, split_file)
    if data.class_names is not None:
        class_names = list(data.class_names)
    datasets = {
        name: TransformedDataset(split, build_transform(data, train=(name == data.train_split)))
        for name, split in raw.items()
    }
    return DataSplits(datasets, class_names)


def build_loader(
    dataset: Dataset,
    cfg: DataConfig,
    train: bool,
    device: torch.device,
    seed: int = 0,
    sampler: Sampler | None = None,
) -> DataLoader:
    """A loader with the speed settings: workers, pinned memory, persistent workers."""
    batch_size = cfg.batch_size if train else (cfg.eval_batch_size or cfg.batch_size)
    pin = cfg.pin_memory if cfg.pin_memory is not None else device.type == "cuda"
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=train and sampler is None,
        sampler=sampler,
        num_workers=cfg.num_workers,
        pin_memory=pin,
        persistent_workers=cfg.persistent_workers and cfg.num_workers > 0,
        drop_last=False,
        generator=generator,
    )
