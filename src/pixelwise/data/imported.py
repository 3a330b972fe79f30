"""A dataset class of your own, named by import path in ``data.format``.

``data.format: mypackage.datasets:LeafSegmentation`` (with ``data.options`` as keyword
options) makes pixelwise call ``LeafSegmentation(split=name, root=data.root,
**data.options)`` for the train, validation and test splits. A split the class does not
have raises ``FileNotFoundError``, ``KeyError`` or ``ValueError`` (or is empty);
validation and test splits it lacks are carved from train as for every format
(``data.val_fraction``, ``data.test_fraction``, ``splits.json``).

Items are ``(image, target)``: the image a PIL image or a (C, H, W) / (H, W) tensor or
array (uint8 0-255, or float 0-1), the target a class index or an (H, W) mask of class
indices. pixelwise's transforms then resize, augment and normalise them as for any
format. Class names come from ``data.class_names``, else the class's ``classes``
attribute, else ``data.num_classes`` numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

from ..config import DataConfig
from ..plugins import import_class
from .base import RawDataset
from .io import DataError
from .splits import carve_missing_splits

ABSENT = (FileNotFoundError, KeyError, ValueError)


class ImportedSplit(RawDataset):
    """One split of a user's dataset, its items as every format gives them."""

    def __init__(self, dataset: Dataset, name: str, source: str) -> None:
        super().__init__()
        self.dataset, self.name, self.source = dataset, name, source
        if len(dataset) > 0:  # type: ignore[arg-type]
            self.task = (
                "segmentation"
                if target_of(dataset[0][1], self.describe(0)).dim()
                else ("classification")
            )

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def describe(self, index: int) -> str:
        return f"{self.source} {self.name} item {index}"

    def load(self, index: int) -> tuple[tv_tensors.Image, Any]:
        image, target = self.dataset[index]
        where = self.describe(index)
        label = target_of(target, where)
        mask = tv_tensors.Mask(label) if label.dim() else int(label)
        return image_of(image, where), mask


def image_of(image: Any, where: str) -> tv_tensors.Image:
    if isinstance(image, Image.Image):
        return tv_tensors.Image(F.pil_to_tensor(image))
    tensor = torch.as_tensor(np.asarray(image) if not isinstance(image, torch.Tensor) else image)
    if tensor.dim() == 2:
        tensor = tensor.unsqueeze(0)
    if tensor.dim() != 3 or not (tensor.dtype == torch.uint8 or tensor.is_floating_point()):
        raise DataError(
            f"{where}: the image must be a PIL image or a (C, H, W) uint8 or float tensor, "
            f"got {tuple(tensor.shape)} {tensor.dtype}"
        )
    return tv_tensors.Image(tensor)


def target_of(target: Any, where: str) -> torch.Tensor:
    label = torch.as_tensor(np.asarray(target) if isinstance(target, Image.Image) else target)
    if label.dim() not in (0, 2) or label.is_floating_point():
        raise DataError(
            f"{where}: the target must be a class index or an (H, W) mask of class indices, "
            f"got {tuple(label.shape)} {label.dtype}"
        )
    return label.long()


def build_imported(
    cfg: DataConfig, seed: int, split_file: Path | None
) -> tuple[dict[str, Dataset], list[str]]:
    """The splits of the class ``cfg.format`` names, and the class names."""
    cls = import_class(cfg.format, "data.format", Dataset)
    splits: dict[str, Dataset] = {}
    first = None
    for name in dict.fromkeys([cfg.train_split, cfg.val_split, cfg.test_split]):
        try:
            dataset = cls(split=name, root=cfg.root, **cfg.options)
        except TypeError as err:
            raise DataError(f"data.format={cfg.format}: {err} (its data.options?)") from err
        except ABSENT as err:
            if name == cfg.train_split:
                raise DataError(f"data.format={cfg.format}: no {name!r} split: {err}") from err
            continue
        if len(dataset) == 0:  # type: ignore[arg-type]
            if name == cfg.train_split:
                raise DataError(f"data.format={cfg.format}: its {name!r} split is empty")
            continue
        first = first or dataset
        splits[name] = ImportedSplit(dataset, name, cfg.format)
    names = cfg.class_names or getattr(first, "classes", None)
    if names is None:
        if cfg.num_classes is None:
            raise DataError(
                f"data.format={cfg.format}: set data.num_classes or data.class_names (or give "
                "the dataset a `classes` attribute)"
            )
        names = [str(i) for i in range(cfg.num_classes)]
    return carve_missing_splits(splits, cfg, seed, split_file), [str(n) for n in names]
