"""Training batches augmented as whole tensors in the training process (``data.loader: tensor``).

A ``DataLoader`` with workers runs the transforms image by image in other processes;
on a CPU with two cores those processes take cores from the model. For small images
whose augmentation is only a flip and a translation (CIFAR), airbench (Jordan, 2024)
keeps the dataset as one uint8 tensor and augments a whole batch with a few tensor
operations. :class:`TensorLoader` does the same inside pixelwise's loop:

- every image is decoded once (through :class:`~pixelwise.data.cache.CachedDataset`),
  resized to ``data.image_size`` and stacked into one (N, C, H, W) uint8 tensor on the
  training device;
- a batch is one gather: the translation (``data.crop_padding`` pixels, the border
  filled as ``data.crop_padding_mode`` says: 0 or mirrored) and the flip are index
  arithmetic on the rows and columns, then the batch is scaled to [0, 1] and normalised;
- flips alternate (airbench's scheme): each image has a fixed random side, taken on even
  epochs and swapped on odd ones, so every image is seen both ways every two epochs
  (with ``data.hflip=0.5``; ``0`` switches flips off).

It has the parts of a ``DataLoader`` the loop uses: ``len``, ``batch_size``,
``generator`` (re-seeded per epoch, it draws the order and the translations, so a
resumed run is exact), ``batch_sampler.sampler`` (mid-epoch resume skips batches) and
``sampler`` (a ``DistributedSampler`` splits the data across processes).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import BatchSampler, Dataset, RandomSampler, Sampler
from torchvision.transforms.v2 import functional as TF

from ..config import ConfigError, DataConfig
from .base import task_of
from .cache import CachedDataset
from .transforms import augmentation_for, normalization

# Augmentation knobs the tensor loader cannot do; each must be off.
_UNSUPPORTED = ("vflip", "rotation", "color_jitter", "random_resized_crop", "random_scale")
_UNSUPPORTED_DATA = ("auto_augment", "random_erasing", "photometric_distortion")


def check_tensor_loader(cfg: DataConfig, task: str) -> None:
    """Refuse settings that ``data.loader: tensor`` would silently ignore."""
    reason = None
    if task != "classification":
        reason = f"is for classification (this is {task})"
    elif cfg.format == "webdataset":
        reason = "needs the whole split in memory (data.format=webdataset streams it)"
    elif cfg.sampler != "random":
        reason = f"draws a random order (data.sampler={cfg.sampler})"
    else:
        aug = augmentation_for(cfg, task)
        knobs = [name for name in _UNSUPPORTED if getattr(aug, name)]
        knobs += [name for name in _UNSUPPORTED_DATA if getattr(cfg, name)]
        if knobs:
            reason = (
                f"does flips and translations only (data.augment={cfg.augment} sets "
                f"{', '.join(knobs)}; use data.augment=default or light)"
            )
        elif aug.hflip not in (0.0, 0.5):
            reason = f"alternates flips (data.hflip must be 0 or 0.5, got {aug.hflip})"
    if reason:
        raise ConfigError(f"data.loader=tensor {reason}; or set data.loader=dataloader")


def stack_images(raw: CachedDataset, size: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Every image of a filled cache at ``size`` in one (N, C, H, W) uint8 tensor, and the
    labels in one int64 tensor."""
    raw.fill()
    images = torch.empty((len(raw), raw.images[0].shape[0], *size), dtype=torch.uint8)  # type: ignore[index]
    labels = torch.empty(len(raw), dtype=torch.int64)
    for index in range(len(raw)):
        image, label = raw.load(index)
        if list(image.shape[-2:]) != list(size):
            image = TF.resize(image, list(size), antialias=True)
        images[index] = image
        labels[index] = int(label)
    return images, labels


def shifted_indices(
    shifts: torch.Tensor, length: int, padding: int, mode: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Source indices (B, length) of a translation by ``shifts - padding`` pixels and
    whether each lies inside the image; outside ones are mirrored (``reflect``) or
    marked for the fill (``constant``)."""
    index = shifts[:, None] - padding + torch.arange(length, device=shifts.device)[None]
    inside = (index >= 0) & (index < length)
    if mode == "reflect":
        index = index.abs()
        index = torch.where(index > length - 1, 2 * (length - 1) - index, index)
    return index.clamp(0, length - 1), inside


class TensorLoader:
    """Augmented, normalised training batches from one uint8 tensor of the split."""

    def __init__(
        self,
        dataset: Dataset,
        cfg: DataConfig,
        device: torch.device,
        seed: int = 0,
        sampler: Sampler | None = None,
    ) -> None:
        raw = getattr(dataset, "raw", dataset)
        check_tensor_loader(cfg, task_of(raw))
        if not isinstance(raw, CachedDataset):
            raw = CachedDataset(raw, cfg.num_workers, desc="caching train")
        images, labels = stack_images(raw, list(cfg.image_size))
        self.images, self.labels = images.to(device), labels.to(device)
        self.device = device
        self.batch_size = cfg.batch_size
        aug = augmentation_for(cfg, "classification")
        self.padding, self.flip = aug.crop_padding, aug.hflip > 0
        self.padding_mode = cfg.crop_padding_mode
        mean, std = normalization(cfg) if cfg.normalize else ([0.0] * 3, [1.0] * 3)
        channels = images.shape[1]
        self.mean = torch.tensor(mean[:channels], device=device).view(1, -1, 1, 1) * 255
        self.scale = 1 / (torch.tensor(std[:channels], device=device).view(1, -1, 1, 1) * 255)
        self.generator = torch.Generator().manual_seed(seed)
        # Each image's side on even epochs: fixed for the run, from the seed alone.
        sides = torch.Generator().manual_seed(seed + 1)
        self.flip_side = torch.rand(len(images), generator=sides) < 0.5
        self.epoch = 0
        self.sampler = sampler or RandomSampler(range(len(images)), generator=self.generator)
        drop_last = len(images) > self.batch_size
        self.batch_sampler = BatchSampler(self.sampler, self.batch_size, drop_last)

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def plain_images(self, count: int) -> torch.Tensor:
        """The first ``count`` images, normalised and not augmented (data-dependent
        initialisation, such as a whitening layer's, wants the data's own statistics)."""
        return self.normalise(self.images[:count])

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        return (images.float() - self.mean).mul_(self.scale)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        count = len(self.images)
        shifts = torch.randint(0, 2 * self.padding + 1, (count, 2), generator=self.generator)
        flips = self.flip_side ^ bool(self.epoch % 2)
        if not self.flip:
            flips = torch.zeros(count, dtype=torch.bool)
        shifts, flips = shifts.to(self.device), flips.to(self.device)
        for indices in self.batch_sampler:
            index = torch.as_tensor(indices, device=self.device)
            yield self.augment(index, shifts[index], flips[index]), self.labels[index]

    def augment(
        self, index: torch.Tensor, shifts: torch.Tensor, flips: torch.Tensor
    ) -> torch.Tensor:
        """The images at ``index``, translated by ``shifts - padding`` and flipped where
        ``flips``, as one gather; normalised float32 (N, C, H, W)."""
        height, width = self.images.shape[-2:]
        rows, rows_inside = shifted_indices(shifts[:, 0], height, self.padding, self.padding_mode)
        cols, cols_inside = shifted_indices(shifts[:, 1], width, self.padding, self.padding_mode)
        cols = torch.where(flips[:, None], cols.flip(-1), cols)
        cols_inside = torch.where(flips[:, None], cols_inside.flip(-1), cols_inside)
        channels = torch.arange(self.images.shape[1], device=self.device)
        batch = self.images[
            index[:, None, None, None],
            channels[None, :, None, None],
            rows[:, None, :, None],
            cols[:, None, None, :],
        ]
        images = self.normalise(batch)
        if self.padding and self.padding_mode == "constant":  # the fill is 0 before normalising
            inside = rows_inside[:, None, :, None] & cols_inside[:, None, None, :]
            images = torch.where(inside, images, -self.mean * self.scale)
        return images
