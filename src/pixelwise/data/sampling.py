"""Class-balanced sampling (``data.sampler: balanced``), the alternative to class-weighted
losses: each training item is drawn with weight ``1 / count(its class)``, with
replacement, so every class is seen equally often in expectation.

The draw is ``torch.utils.data.WeightedRandomSampler``'s (``torch.multinomial`` with
replacement), made distributed and resumable: every process draws the same global
sequence from a generator seeded by ``(seed, epoch)`` (``set_epoch``, as
``DistributedSampler``), and takes every ``world_size``-th index from its rank on, so the
processes share one epoch's draw without overlap and each has the same number of batches.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator

import torch
from torch.utils.data import Dataset, Sampler

from .base import labels_of
from .io import DataError


def balanced_weights(labels: list[int]) -> torch.Tensor:
    """``1 / count(class)`` for each item."""
    counts = Counter(labels)
    return torch.tensor([1.0 / counts[label] for label in labels], dtype=torch.float64)


class BalancedSampler(Sampler[int]):
    """``ceil(len / world_size)`` indices per process per epoch, drawn by ``weights``."""

    def __init__(
        self, weights: torch.Tensor, seed: int = 0, rank: int = 0, world_size: int = 1
    ) -> None:
        self.weights = weights
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.num_samples = math.ceil(len(weights) / world_size)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        total = self.num_samples * self.world_size
        drawn = torch.multinomial(self.weights, total, replacement=True, generator=generator)
        return iter(drawn[self.rank :: self.world_size].tolist())

    def __len__(self) -> int:
        return self.num_samples


def balanced_sampler(
    dataset: Dataset, seed: int = 0, rank: int = 0, world_size: int = 1
) -> BalancedSampler:
    """The balanced sampler of a classification split; its labels are read from the
    dataset (no image is decoded)."""
    labels = labels_of(getattr(dataset, "raw", dataset))
    if labels is None:
        raise DataError(
            "data.sampler=balanced needs the class of every training item, and this "
            "dataset does not list them (a `labels` attribute): use data.sampler=random "
            "with data.class_weights instead"
        )
    return BalancedSampler(balanced_weights(labels), seed, rank, world_size)
