"""One pass over a split, reading every file once: what ``check`` and ``stats`` share.

Items are read strictly (``inspect``: ``load`` plus the files' facts, never the
``on_error`` policy) in loader worker processes; each comes back as a small summary
(size, label, a multi-label image's label set or per-class pixel counts, pixel sums for mean/std, a hash of the decoded
pixels to find copies, file kinds, stored mask values, or the error), never as pixels,
and holding no tensors: a tensor crossing from a worker keeps a file descriptor open
for as long as it lives.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from ..log import progress
from .base import RawDataset, labels_of, locate, task_of
from .io import DataError


@dataclass
class ItemSummary:
    index: int
    path: str
    size: tuple[int, int] | None = None  # (height, width)
    label: int | None = None
    label_set: list[int] | None = None  # multilabel: the classes of the multi-hot target
    class_pixels: list[int] | None = None  # labelled pixels per class
    ignored_pixels: int = 0
    pixel_sum: list[float] | None = None  # per channel, values in [0, 1]
    pixel_sq_sum: list[float] | None = None
    error_kind: str | None = None
    error: str | None = None
    image_hash: str | None = None  # of the decoded pixels: equal for identical images
    image_kind: str | None = None  # "JPEG RGB": file format and mode
    mask_kind: str | None = None
    mask_values: dict[Any, int] | None = None  # stored mask value -> pixels
    mask_path: str | None = None
    mask_resized: bool = False


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
        self.multilabel = task_of(split) == "multilabel"

    def __len__(self) -> int:
        return len(self.split)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> ItemSummary:
        base, inner = locate(self.split, index)
        path = base.describe(inner) if isinstance(base, RawDataset) else f"item {index}"
        item = ItemSummary(index, path)
        try:
            image, target, facts = base.inspect(inner, self.read_images)  # type: ignore[attr-defined]
        except DataError as err:
            item.error_kind, item.error = err.kind, str(err)
            return item
        item.image_kind, item.mask_kind = facts.image_kind, facts.mask_kind
        item.mask_values, item.mask_path = facts.mask_values, facts.mask_path
        item.mask_resized = facts.mask_resized
        if image is not None:
            item.size = (int(image.shape[-2]), int(image.shape[-1]))
            pixels = image.as_subclass(torch.Tensor).contiguous()
            digest = hashlib.blake2b(str(tuple(pixels.shape)).encode(), digest_size=16)
            digest.update(pixels.numpy().tobytes())
            item.image_hash = digest.hexdigest()
            if self.pixel_stats:
                values = pixels.reshape(pixels.shape[0], -1).double() / 255.0
                item.pixel_sum = values.sum(dim=1).tolist()
                item.pixel_sq_sum = (values * values).sum(dim=1).tolist()
        if self.labels is not None:
            item.label = self.labels[index]
        elif self.multilabel:  # a (C,) multi-hot vector
            item.label_set = torch.as_tensor(target).nonzero().flatten().tolist()
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
