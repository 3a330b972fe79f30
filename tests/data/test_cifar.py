from __future__ import annotations

import pickle

import pytest
import torch
from data_fixtures import cifar_batches, make_config

from pixelwise.data import FORMATS
from pixelwise.data.io import DataError


def build(cfg):
    return FORMATS[cfg.data.format](cfg.data, cfg.seed, None)


def test_cifar10_pickle_batches_with_own_test_split(tmp_path):
    cifar_batches(tmp_path, per_batch=4)
    cfg = make_config(format="cifar10", root=str(tmp_path), val_fraction=0.2)
    splits, names = build(cfg)
    assert names[:2] == ["airplane", "automobile"] and len(names) == 10
    assert [len(splits[s]) for s in ("train", "val", "test")] == [16, 4, 4]
    with (tmp_path / "cifar-10-batches-py" / "test_batch").open("rb") as f:
        batch = pickle.load(f)
    image, label = splits["test"][1]
    assert image.shape == (3, 32, 32) and image.dtype == torch.uint8
    # the pickle stores each image as 1024 red, 1024 green, 1024 blue values
    expected = torch.from_numpy(batch["data"][1].reshape(3, 32, 32))
    assert torch.equal(image, expected) and label == batch["labels"][1]


def test_cifar10_root_may_be_the_batches_folder_and_gray_is_converted(tmp_path):
    cifar_batches(tmp_path)
    cfg = make_config(
        format="cifar10",
        root=str(tmp_path / "cifar-10-batches-py"),
        in_channels=1,
        mean=[0.5],
        std=[0.5],
    )
    splits, _ = build(cfg)
    assert splits["train"][0][0].shape == (1, 32, 32)


def test_cifar100_fine_labels(tmp_path):
    cifar_batches(tmp_path, per_batch=3, hundred=True)
    cfg = make_config(format="cifar100", root=str(tmp_path), val_fraction=0)
    splits, names = build(cfg)
    assert len(names) == 100 and len(splits["train"]) == 15 and len(splits["test"]) == 3
    assert splits["train"][4][1] == 4


def test_missing_batch_is_named(tmp_path):
    cifar_batches(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DataError, match="data_batch_3"):
        build(make_config(format="cifar10", root=str(tmp_path)))
