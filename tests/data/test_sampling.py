"""Class-balanced sampling: 1/count weights, one shared draw split across processes."""

from __future__ import annotations

import pytest
import torch
from data_fixtures import make_config
from torch.utils.data import Dataset, DistributedSampler

from pixelwise.config import ConfigError
from pixelwise.data import build_loader
from pixelwise.data.io import DataError
from pixelwise.data.sampling import BalancedSampler, balanced_sampler, balanced_weights


class Labelled(Dataset):
    """90 items of class 0 and 10 of class 1, with a ``labels`` list as the formats have."""

    def __init__(self) -> None:
        self.labels = [0] * 90 + [1] * 10

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        return torch.zeros(3, 2, 2), self.labels[index]


def test_weights_make_each_class_equally_likely():
    weights = balanced_weights(Labelled().labels)
    assert weights[0] == pytest.approx(1 / 90) and weights[-1] == pytest.approx(1 / 10)
    sampler = BalancedSampler(balanced_weights([0] * 900 + [1] * 100), seed=0)
    drawn = torch.tensor(list(sampler))
    assert len(drawn) == 1000
    assert 0.45 < float((drawn >= 900).float().mean()) < 0.55  # 10% of the data, half the draws


def test_processes_share_one_draw_per_epoch_without_overlap():
    weights = balanced_weights(Labelled().labels)
    ranks = [BalancedSampler(weights, seed=3, rank=r, world_size=2) for r in range(2)]
    whole = BalancedSampler(weights, seed=3, rank=0, world_size=1)
    for epoch in (0, 1):
        for s in [*ranks, whole]:
            s.set_epoch(epoch)
        first, second = list(ranks[0]), list(ranks[1])
        assert len(first) == len(second) == len(ranks[0]) == 50
        interleaved = [i for pair in zip(first, second) for i in pair]
        generator = torch.Generator().manual_seed(3 + epoch)
        expected = torch.multinomial(weights, 100, replacement=True, generator=generator)
        assert interleaved == expected.tolist()
    ranks[0].set_epoch(0)
    assert list(ranks[0]) != first  # another epoch, another draw


def test_loader_uses_the_balanced_sampler_for_this_rank():
    cfg = make_config(sampler="balanced", batch_size=10)
    loader = build_loader(Labelled(), cfg.data, True, torch.device("cpu"), seed=1)
    assert isinstance(loader.sampler, BalancedSampler) and loader.sampler.world_size == 1
    ddp = DistributedSampler(Labelled(), num_replicas=2, rank=1, shuffle=True)
    loader = build_loader(Labelled(), cfg.data, True, torch.device("cpu"), sampler=ddp)
    assert (loader.sampler.rank, loader.sampler.world_size, len(loader)) == (1, 2, 5)
    evaluation = build_loader(Labelled(), cfg.data, False, torch.device("cpu"))
    assert not isinstance(evaluation.sampler, BalancedSampler)
    labels = torch.cat(
        [y for _, y in build_loader(Labelled(), cfg.data, True, torch.device("cpu"))]
    )
    assert 30 < int(labels.sum()) < 70  # class 1: 10% of the data, about half the draws


def test_balanced_sampling_needs_labels_and_classification():
    class Unlabelled(Labelled):
        labels = None

        def __init__(self) -> None:
            pass

    with pytest.raises(DataError, match="data.sampler=balanced"):
        balanced_sampler(Unlabelled())
    with pytest.raises(ConfigError, match="data.sampler"):
        make_config("segmentation", sampler="balanced")
