from __future__ import annotations

import numpy as np
import pytest
import torch
from data_fixtures import class_folders, make_config, pixels, save

from pixelwise.data import PadCollate, build_datasets, build_loader
from pixelwise.data.io import DataError


def test_digits_segmentation_builds_and_loads(tmp_path):
    cfg = make_config(
        "segmentation",
        format="digits_segmentation",
        in_channels=1,
        image_size=[32, 32],
        num_samples=40,
        batch_size=4,
    )
    splits = build_datasets(cfg, tmp_path)
    assert splits.task == "segmentation" and splits.num_classes == 11
    loader = build_loader(splits.datasets["train"], cfg.data, True, torch.device("cpu"))
    images, masks = next(iter(loader))
    assert images.shape == (4, 1, 32, 32) and masks.shape == (4, 32, 32)
    assert masks.dtype == torch.int64


def test_native_eval_pads_masks_with_ignore_index(tmp_path):
    for split, sizes in (("train", [(10, 12)]), ("val", [(10, 12), (6, 14)])):
        for i, (h, w) in enumerate(sizes):
            save(tmp_path / split / "images" / f"{i}.png", pixels(h, w, seed=i))
            save(tmp_path / split / "masks" / f"{i}.png", np.ones((h, w), dtype=np.uint8))
    cfg = make_config(
        "segmentation",
        format="mask_folder",
        root=str(tmp_path),
        num_classes=2,
        eval_size="native",
        test_fraction=0,
        eval_batch_size=2,
    )
    splits = build_datasets(cfg)
    loader = build_loader(splits.datasets["val"], cfg.data, False, torch.device("cpu"))
    images, masks = next(iter(loader))
    assert images.shape == (2, 3, 10, 14) and masks.shape == (2, 10, 14)
    assert int((masks[0] == 255).sum()) == 10 * 14 - 10 * 12
    assert bool((images[1, :, 6:, :] == 0).all()) and bool((masks[1, 6:] == 255).all())


def test_pad_collate_leaves_equal_sizes_to_default_collate():
    batch = [(torch.zeros(3, 4, 4), torch.tensor(1)), (torch.ones(3, 4, 4), torch.tensor(0))]
    images, labels = PadCollate(255)(batch)
    assert images.shape == (2, 3, 4, 4) and labels.tolist() == [1, 0]


def test_training_drops_a_last_batch_of_one(tmp_path):
    class_folders(tmp_path, {"a": 5, "b": 4})
    cfg = make_config(
        format="image_folder",
        root=str(tmp_path),
        batch_size=4,
        val_fraction=0,
        test_fraction=0,
        image_size=[8, 10],
    )
    splits = build_datasets(cfg)
    assert len(build_loader(splits.datasets["train"], cfg.data, True, torch.device("cpu"))) == 2
    assert len(build_loader(splits.datasets["train"], cfg.data, False, torch.device("cpu"))) == 3


def test_task_and_class_count_must_match_the_data(tmp_path):
    class_folders(tmp_path, {"a": 2, "b": 2})
    with pytest.raises(DataError, match="set task: classification"):
        build_datasets(make_config("segmentation", format="image_folder", root=str(tmp_path)))
    with pytest.raises(DataError, match="num_classes=3"):
        build_datasets(make_config(format="image_folder", root=str(tmp_path), num_classes=3))
    with pytest.raises(DataError, match="unknown format"):
        build_datasets(make_config(format="imagenet"))
    with pytest.raises(DataError, match="data.root is not set"):
        build_datasets(make_config(format="image_folder"))


def test_num_classes_counts_the_included_classes(tmp_path):
    class_folders(tmp_path, {"a": 2, "b": 2, "c": 2})
    cfg = make_config(
        format="image_folder",
        root=str(tmp_path),
        include_classes=[2, 0],
        num_classes=2,
        class_names=["cat", "ant"],
        val_fraction=0,
        test_fraction=0,
    )
    splits = build_datasets(cfg)
    assert splits.class_names == ["cat", "ant"]
    assert sorted(splits.raw["train"].labels) == [0, 0, 1, 1]


def test_an_unreadable_file_in_a_worker_keeps_its_one_line_message(tmp_path):
    class_folders(tmp_path, {"a": 2, "b": 2})
    (tmp_path / "a" / "000.png").write_bytes(b"broken")
    cfg = make_config(
        format="image_folder",
        root=str(tmp_path),
        val_fraction=0,
        test_fraction=0,
        num_workers=1,
        batch_size=4,
    )
    splits = build_datasets(cfg)
    loader = build_loader(splits.datasets["train"], cfg.data, False, torch.device("cpu"))
    with pytest.raises(DataError) as caught:
        next(iter(loader))
    assert str(caught.value).startswith(str(tmp_path / "a" / "000.png"))
