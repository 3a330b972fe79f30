from __future__ import annotations

import numpy as np
import torch
from data_fixtures import class_folders, make_config, mask_pairs, pixels, save

from pixelwise.data import FORMATS, build_datasets
from pixelwise.data.cache import CachedDataset


def test_cache_returns_the_same_items_as_the_files(tmp_path):
    mask_pairs(tmp_path, ["a", "b"], size=(12, 16))
    save(tmp_path / "images" / "c.jpg", pixels(7, 9))
    save(tmp_path / "masks" / "c.png", np.zeros((7, 9), dtype=np.uint8))
    cfg = make_config(
        "segmentation",
        format="mask_folder",
        root=str(tmp_path),
        num_classes=3,
        val_fraction=0,
        test_fraction=0,
    )
    raw = FORMATS["mask_folder"](cfg.data, 0, None)[0]["train"]
    cached = CachedDataset(raw)
    assert len(cached) == 3 and cached.task == "segmentation"
    for i in range(3):
        (image, mask), (want_image, want_mask) = cached[i], raw[i]
        assert torch.equal(image, want_image) and torch.equal(mask, want_mask)
        assert type(image) is type(want_image) and type(mask) is type(want_mask)
    assert cached.images.buffer.is_shared()


def test_cache_through_build_datasets_with_workers(tmp_path):
    class_folders(tmp_path, {"a": 4, "b": 4})
    cfg = make_config(
        format="image_folder",
        root=str(tmp_path),
        cache=True,
        num_workers=2,
        image_size=[8, 10],
        augment="none",
        val_fraction=0.25,
        test_fraction=0,
    )
    splits = build_datasets(cfg)
    assert isinstance(splits.raw["train"], CachedDataset)
    assert splits.raw["train"].labels == [splits.raw["train"][i][1] for i in range(6)]
    image, label = splits.datasets["val"][0]
    assert image.dtype == torch.float32 and label.dtype == torch.int64
