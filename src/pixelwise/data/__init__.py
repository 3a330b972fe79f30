"""Datasets, transforms and loaders.

``build_datasets(cfg, run_dir)`` reads the configured format into raw splits (each
item an uint8 ``tv_tensors.Image`` and an int label or ``tv_tensors.Mask``) and wraps
them with the train or eval transform. A format is a function
``(DataConfig, seed, split_file) -> (datasets by split, class names)`` in ``FORMATS``;
layouts and config blocks: ``docs/data.md``.

On their own, in any ``DataLoader``: ``MaskFolder(root, ...)``, ``ImageFolder(root, ...)``
and ``FormatDataset(format, ...)`` give one split as ``(float image, int64 target)``
tensors through the same readers and joint image/mask transforms, from ``data:`` keys.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler, default_collate

from ..config import DataConfig, ExperimentConfig, from_dict, validate
from ..plugins import is_import_path
from . import cifar, digits, folders, imported, masks, oxford_pet, shards, voc
from .base import SKIPPED_FILE, base_datasets, skipped_files, task_of
from .cache import CachedDataset
from .io import DataError
from .sampling import balanced_sampler
from .splits import select_classes
from .tensor_loader import TensorLoader
from .transforms import build_transform

__all__ = [
    "FORMATS",
    "SKIPPED_FILE",
    "DataError",
    "DataSplits",
    "FormatDataset",
    "ImageFolder",
    "MaskFolder",
    "TensorLoader",
    "TransformedDataset",
    "build_datasets",
    "build_loader",
    "build_raw_splits",
    "skipped_files",
]

FormatBuilder = Callable[[DataConfig, int, Path | None], tuple[dict[str, Dataset], list[str]]]

FORMATS: dict[str, FormatBuilder] = {
    "digits": digits.build_digits,
    "digits_segmentation": digits.build_digit_segmentation,
    "image_folder": folders.build_image_folder,
    "csv": folders.build_csv,
    "multilabel_csv": folders.build_multilabel_csv,
    "cifar10": cifar.build_cifar10,
    "cifar100": cifar.build_cifar100,
    "mask_folder": masks.build_mask_folder,
    "oxford_pet": oxford_pet.build_oxford_pet,
    "voc": voc.build_voc,
    "webdataset": shards.build_webdataset,
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
        elif image.dtype == torch.uint8:  # a user's own dataset: 0-255 becomes 0-1
            image = image.float() / 255
        return image.as_subclass(torch.Tensor), torch.as_tensor(target).long()


class TransformedStream(IterableDataset):
    """A streamed raw split (WebDataset shards) with its transform, as ``TransformedDataset``."""

    def __init__(self, raw: IterableDataset, transform: Callable | None) -> None:
        self.raw = raw
        self.transform = transform

    def __len__(self) -> int:
        return len(self.raw)  # type: ignore[arg-type]

    def __iter__(self):
        for image, target in self.raw:
            if self.transform is not None:
                image, target = self.transform(image, target)
            yield image.as_subclass(torch.Tensor), torch.as_tensor(target).long()


@dataclass
class DataSplits:
    datasets: dict[str, TransformedDataset | TransformedStream]
    class_names: list[str]
    task: str = "classification"
    raw: dict[str, Dataset] = field(default_factory=dict)  # before transforms (and cache)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def build_raw_splits(
    cfg: ExperimentConfig, run_dir: Path | None = None
) -> tuple[dict[str, Dataset], list[str]]:
    """The format's splits (own or carved, ``splits.json`` in ``run_dir``) and class names,
    with ``include_classes`` and ``samples_per_class`` applied, then ``data.class_names``
    and ``data.num_classes`` checked against what is left."""
    data = cfg.data
    if is_import_path(data.format):
        builder = imported.build_imported  # a dataset class of the user's, by import path
    elif data.format in FORMATS:
        builder = FORMATS[data.format]
    else:
        raise DataError(
            f"data.format: unknown format {data.format!r} (valid: {', '.join(FORMATS)}, or a "
            "dataset class as package.module:ClassName)"
        )
    split_file = run_dir / SPLITS_FILE if run_dir is not None else None
    raw, class_names = builder(data, cfg.seed, split_file)
    raw, class_names = select_classes(raw, data, class_names)
    if data.class_names is not None:
        if len(data.class_names) != len(class_names):
            raise DataError(
                f"data.class_names has {len(data.class_names)} names but data.format="
                f"{data.format} found {len(class_names)} classes: {', '.join(class_names)}"
            )
        class_names = list(data.class_names)
    if data.num_classes is not None and data.num_classes != len(class_names):
        raise DataError(
            f"data.num_classes={data.num_classes} but data.format={data.format} found "
            f"{len(class_names)} classes: {', '.join(class_names)}"
        )
    return raw, class_names


def build_datasets(cfg: ExperimentConfig, run_dir: Path | None = None) -> DataSplits:
    data = cfg.data
    raw, class_names = build_raw_splits(cfg, run_dir)
    task = task_of(raw[data.train_split])
    if task != cfg.task:
        raise DataError(
            f"data.format={data.format} gives {task} targets, but task is {cfg.task}; "
            f"set task: {task} (or another data.format)"
        )
    for split in raw.values():
        for base in base_datasets(split):
            base.on_error = data.on_error
            base.skip_log = run_dir / SKIPPED_FILE if run_dir is not None else None
    if data.cache:
        raw = {
            name: CachedDataset(split, data.num_workers, desc=f"caching {name}")
            for name, split in raw.items()
        }
    datasets = {
        name: (TransformedStream if isinstance(split, IterableDataset) else TransformedDataset)(
            split,
            build_transform(
                data,
                train=(name == data.train_split),
                task="classification" if task == "multilabel" else task,  # same image transforms
                class_names=class_names,
            ),
        )
        for name, split in raw.items()
    }
    return DataSplits(datasets, class_names, task, raw)


class FormatDataset(TransformedDataset):
    """One split of a data format, ready for any ``DataLoader``: items are a float image
    (C, H, W) and an int64 label or (H, W) mask, through the reader and transforms that
    training uses. ``data_keys`` are the ``data:`` keys of a config (``root``,
    ``num_classes``, ``image_size``, ``augment``, ``mask_suffix``, ...: docs/data.md),
    checked as a config's are.

    ``transform``: None for pixelwise's preset of the split (training augmentation where
    ``train``, by default where ``split`` is the training split; else resize and
    normalise), or any callable ``(image, target) -> (image, target)``. Images reach it
    as uint8 ``tv_tensors.Image`` and masks as ``tv_tensors.Mask``, so
    ``torchvision.transforms.v2`` moves both together. A format without the split carves
    it from the training data by ``val_fraction`` / ``test_fraction`` and ``seed``.
    ``classes`` names the classes; ``task`` is classification or segmentation.
    """

    def __init__(
        self,
        format: str,
        split: str = "train",
        *,
        train: bool | None = None,
        transform: Callable | None = None,
        seed: int = 0,
        **data_keys: Any,
    ) -> None:
        source = f"pixelwise.data.{type(self).__name__}"
        if isinstance(data_keys.get("root"), Path):
            data_keys["root"] = str(data_keys["root"])
        cfg = from_dict(
            ExperimentConfig, {"seed": seed, "data": {"format": format, **data_keys}}, source
        )
        validate(cfg, source)
        raw, class_names = build_raw_splits(cfg)
        if split not in raw:
            raise DataError(f"{source}: no split {split!r} (this data has {', '.join(raw)})")
        for base in base_datasets(raw[split]):
            base.on_error = cfg.data.on_error
        self.task = task_of(raw[split])
        if transform is None:
            training = split == cfg.data.train_split if train is None else train
            transform = build_transform(
                cfg.data, train=training, task=self.task, class_names=class_names
            )
        super().__init__(raw[split], transform)
        self.classes = class_names
        self.data_config = cfg.data


class MaskFolder(FormatDataset):
    """Images and masks paired by file stem (``root/images``, ``root/masks`` by default;
    ``image_dir``, ``mask_dir``, ``mask_suffix``, ``mask_mode``, ``num_classes``...), as
    ``data.format: mask_folder``: one split of ``(image, mask)`` tensors."""

    def __init__(self, root: str | Path, split: str = "train", **options: Any) -> None:
        super().__init__("mask_folder", split, root=root, **options)


class ImageFolder(FormatDataset):
    """One folder per class (``root/<class>/*.png``, or ``root/train/<class>/...`` with
    split folders), as ``data.format: image_folder``: one split of ``(image, label)``."""

    def __init__(self, root: str | Path, split: str = "train", **options: Any) -> None:
        super().__init__("image_folder", split, root=root, **options)


class PadCollate:
    """``default_collate``, except that images and masks of differing sizes (native-size
    segmentation evaluation) are padded at the bottom and right to the largest in the
    batch: images with 0, masks with ``ignore_index`` so that padding is never scored."""

    def __init__(self, ignore_index: int) -> None:
        self.ignore_index = ignore_index

    def __call__(self, batch: list[tuple[torch.Tensor, torch.Tensor]]):
        sizes = {tuple(image.shape[-2:]) for image, _ in batch}
        if len(sizes) == 1:
            return default_collate(batch)
        height = max(h for h, _ in sizes)
        width = max(w for _, w in sizes)
        images, targets = [], []
        for image, target in batch:
            pad = (0, width - image.shape[-1], 0, height - image.shape[-2])
            images.append(F.pad(image, pad, value=0.0))
            targets.append(F.pad(target, pad, value=self.ignore_index) if target.dim() else target)
        return torch.stack(images), torch.stack(targets)


def build_loader(
    dataset: Dataset,
    cfg: DataConfig,
    train: bool,
    device: torch.device,
    seed: int = 0,
    sampler: Sampler | None = None,
) -> DataLoader | TensorLoader:
    """A loader with the speed settings: workers, pinned memory, persistent workers;
    for training with ``data.loader=tensor``, a :class:`TensorLoader` instead.

    Training drops a last incomplete batch (a batch of one breaks batch norm). A stream
    (``data.format=webdataset``) shuffles and splits across processes itself: no sampler.
    ``data.sampler=balanced`` replaces a training loader's sampler by the class-balanced
    one, for this process's rank when ``sampler`` is a ``DistributedSampler``.
    """
    if train and cfg.loader == "tensor":
        return TensorLoader(dataset, cfg, device, seed, sampler)
    raw = getattr(dataset, "raw", None)
    if isinstance(raw, CachedDataset):
        raw.fill()  # before the workers start, so that they share one copy
    batch_size = cfg.batch_size if train else (cfg.eval_batch_size or cfg.batch_size)
    pin = cfg.pin_memory if cfg.pin_memory is not None else device.type == "cuda"
    generator = torch.Generator().manual_seed(seed)
    streamed = isinstance(dataset, IterableDataset)
    if streamed:
        sampler = None
    if train and cfg.sampler == "balanced":
        rank, world = getattr(sampler, "rank", 0), getattr(sampler, "num_replicas", 1)
        sampler = balanced_sampler(dataset, seed, rank, world)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=train and sampler is None and not streamed,
        sampler=sampler,
        num_workers=cfg.num_workers,
        pin_memory=pin,
        persistent_workers=cfg.persistent_workers and cfg.num_workers > 0,
        drop_last=train and len(dataset) > batch_size,  # type: ignore[arg-type]
        generator=generator,
        collate_fn=PadCollate(cfg.ignore_index),
    )
