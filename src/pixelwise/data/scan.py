"""One pass over a split, reading every file once: what ``check`` and ``stats`` share.

Items are read strictly (``load``, never the ``on_error`` policy) in loader worker
processes; each comes back as a small summary (size, label or per-class pixel counts,
pixel sums for mean/std, or the error), never as pixels, and holding no tensors: a
tensor crossing from a worker keeps a file descriptor open for as long as it lives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from ..log import progress
from .base import RawDataset, labels_of, locate
from .io import DataError


@dataclass
class ItemSummary:
    index: int
    path: str
    size: tuple[int, int] | None = None  # (height, width)
    label: int | None = None
    class_pixels: list[int] | None = None  # labelled pixels per class
    ignored_pixels: int = 0
    pixel_sum: list[float] | None = None  # per channel, values in [0, 1]
    pixel_sq_sum: list[float] | None = None
    error_kind: str | None = None
    error: str | None = None


class _Summaries(Dataset):
    def __init__(
        self,
        split: Dataset,
        num_classes: int,
        ignore_index: int,
        read_images: bool,
        pixel_stats: bool,
    ) -> None:
        self.split = split
        self.labels = labels_of(split)
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.read_images = read_images
        self.pixel_stats = pixel_stats

    def __len__(self) -> int:
        return len(self.split)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> ItemSummary:
        base, inner = locate(self.split, index)
        path = base.describe(inner) if isinstance(base, RawDataset) else f"item {index}"
        item = ItemSummary(index, path)
        try:
            if self.read_images:
                image, target = base.load(inner)  # type: ignore[attr-defined]
                item.size = (int(image.shape[-2]), int(image.shape[-1]))
                if self.pixel_stats:
                    pixels = image.reshape(image.shape[0], -1).double() / 255.0
                    item.pixel_sum = pixels.sum(dim=1).tolist()
                    item.pixel_sq_sum = (pixels * pixels).sum(dim=1).tolist()
            else:
                target = base.load_target(inner)  # type: ignore[attr-defined]
        except DataError as err:
            item.error_kind, item.error = err.kind, str(err)
            return item
        if self.labels is not None:
            item.label = self.labels[index]
        elif torch.is_tensor(target) and target.dim() >= 2:
            values = target.reshape(-1).long()
            labelled = values != self.ignore_index
            item.ignored_pixels = int((~labelled).sum())
            counts = torch.bincount(values[labelled], minlength=self.num_classes)
            item.class_pixels = counts[: self.num_classes].tolist()
        else:
            item.label = int(target)
        return item


@dataclass
class SplitScan:
    items: list[ItemSummary] = field(default_factory=list)

    @property
    def errors(self) -> list[ItemSummary]:
        return [i for i in self.items if i.error is not None]

    @property
    def good(self) -> list[ItemSummary]:
        return [i for i in self.items if i.error is None]


def _as_is(item: Any) -> Any:
    return item


def scan_split(
    split: Dataset,
    num_classes: int,
    ignore_index: int = 255,
    read_images: bool = True,
    pixel_stats: bool = False,
    num_workers: int = 0,
    limit: int | None = None,
    desc: str = "scan",
) -> SplitScan:
    """Summaries of every item of ``split`` (the first ``limit`` when given)."""
    summaries: Dataset = _Summaries(split, num_classes, ignore_index, read_images, pixel_stats)
    if limit is not None and limit < len(summaries):  # type: ignore[arg-type]
        summaries = torch.utils.data.Subset(summaries, range(limit))
    loader = DataLoader(
        summaries, batch_size=None, num_workers=num_workers, collate_fn=_as_is, shuffle=False
    )
    scan = SplitScan()
    for item in progress(loader, desc=desc, total=len(summaries)):  # type: ignore[arg-type]
        scan.items.append(item)
    return scan
