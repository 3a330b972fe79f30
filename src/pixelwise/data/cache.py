"""An in-memory cache of decoded uint8 images, for datasets that fit in memory.

Every item is decoded once, in parallel with ``data.num_workers`` processes, and its
pixels are kept in one flat uint8 buffer (masks in another) in shared memory, so that
loader workers read them without copies and without decoding again: an epoch costs only
the augmentation. Memory: sum of C * H * W bytes over the images (CIFAR-10's 50,000
32x32 RGB images: 150 MB; CamVid's 367 480x360 pairs: 250 MB).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors

from ..log import logger, progress
from .base import RawDataset, labels_of, locate, task_of


class _AsArrays(Dataset):
    """Items as numpy arrays: they cross from workers by value (a tensor would keep a
    shared-memory file descriptor open per item while the cache is being filled)."""

    def __init__(self, source: Dataset) -> None:
        self.source = source

    def __len__(self) -> int:
        return len(self.source)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        image, target = self.source[index]
        target = target.numpy() if torch.is_tensor(target) else target
        return image.numpy(), target


def _as_list(batch: list) -> list:
    return batch


class PackedTensors:
    """Tensors of any shapes stored back to back in one flat buffer."""

    def __init__(self, tensors: list[torch.Tensor]) -> None:
        self.shapes = [tuple(t.shape) for t in tensors]
        sizes = torch.tensor([t.numel() for t in tensors], dtype=torch.int64)
        self.offsets = torch.zeros(len(tensors) + 1, dtype=torch.int64)
        torch.cumsum(sizes, 0, out=self.offsets[1:])
        dtype = tensors[0].dtype if tensors else torch.uint8
        self.buffer = torch.empty(int(self.offsets[-1]), dtype=dtype)
        for i, t in enumerate(tensors):
            self.buffer[self.offsets[i] : self.offsets[i + 1]] = t.reshape(-1)
        self.buffer.share_memory_()

    def __getitem__(self, index: int) -> torch.Tensor:
        start, end = int(self.offsets[index]), int(self.offsets[index + 1])
        return self.buffer[start:end].view(self.shapes[index])

    @property
    def nbytes(self) -> int:
        return self.buffer.numel() * self.buffer.element_size()


class CachedDataset(RawDataset):
    """A raw split decoded once into memory; items are views of the packed buffers.

    Filled on first use: by ``build_loader`` in the main process before workers start
    (so that they share one copy), or by the first item read. A split that is never
    loaded (the training split during ``pixelwise eval``) is never decoded.
    """

    def __init__(self, source: Dataset, num_workers: int = 0, desc: str = "cache") -> None:
        super().__init__()
        self.source = source
        self.task = task_of(source)
        self.labels = labels_of(source)
        self.num_workers = num_workers
        self.desc = desc
        self.images: PackedTensors | None = None
        self.masks: PackedTensors | None = None
        self.targets: list | None = None

    @property
    def filled(self) -> bool:
        return self.images is not None

    def fill(self) -> None:
        if self.filled:
            return
        num_workers, desc, source = self.num_workers, self.desc, self.source
        loader = DataLoader(
            _AsArrays(source), batch_size=64, num_workers=num_workers, collate_fn=_as_list
        )
        images, targets = [], []
        for batch in progress(loader, desc=desc, total=len(loader)):
            for image, target in batch:
                images.append(torch.from_numpy(image))
                targets.append(torch.from_numpy(target) if hasattr(target, "shape") else target)
        self.images = PackedTensors(images)
        self.masks = PackedTensors(targets) if self.task == "segmentation" else None
        self.targets = None if self.masks is not None else targets
        size = self.images.nbytes + (self.masks.nbytes if self.masks is not None else 0)
        logger.info(f"{desc}: {len(images):,} items in memory, {size / 2**20:,.0f} MiB")

    def __len__(self) -> int:
        return len(self.source)  # type: ignore[arg-type]

    def load(self, index: int) -> tuple[tv_tensors.Image, Any]:
        self.fill()
        assert self.images is not None
        image = tv_tensors.Image(self.images[index])
        if self.masks is not None:
            return image, tv_tensors.Mask(self.masks[index])
        return image, self.targets[index]  # type: ignore[index]

    def describe(self, index: int) -> str:
        base, inner = locate(self.source, index)
        return base.describe(inner) if isinstance(base, RawDataset) else f"item {index}"
