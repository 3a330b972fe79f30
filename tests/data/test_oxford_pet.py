from __future__ import annotations

import numpy as np
import torch
from data_fixtures import make_config, pet_tree
from PIL import Image

from pixelwise.data import FORMATS


def build(cfg):
    return FORMATS[cfg.data.format](cfg.data, cfg.seed, None)


def trimap_of(dataset, index):
    base, inner = dataset.dataset, dataset.indices[index]
    return torch.from_numpy(np.array(Image.open(base.masks[inner])))


def test_trimaps_become_background_pet_border(tmp_path):
    pet_tree(tmp_path, trainval=6, test=2)
    cfg = make_config("segmentation", format="oxford_pet", root=str(tmp_path), val_fraction=0.3)
    splits, names = build(cfg)
    assert names == ["background", "pet", "border"]
    assert [len(splits[s]) for s in ("train", "val", "test")] == [4, 2, 2]
    image, mask = splits["train"][0]
    trimap = trimap_of(splits["train"], 0)
    assert image.shape[-2:] == mask.shape == trimap.shape
    assert bool((mask[trimap == 1] == 1).all())  # pet
    assert bool((mask[trimap == 2] == 0).all())  # background
    assert bool((mask[trimap == 3] == 2).all())  # border


def test_binary_pet_ignores_the_border(tmp_path):
    pet_tree(tmp_path / "pets")
    cfg = make_config(
        "segmentation",
        format="oxford_pet",
        root=str(tmp_path / "pets" / "oxford-iiit-pet"),
        pet_classes="binary",
        val_fraction=0,
    )
    splits, names = build(cfg)
    assert names == ["background", "pet"]
    train = splits["train"]
    _, mask = train[0]
    trimap = torch.from_numpy(np.array(Image.open(train.masks[0])))
    assert bool((mask[trimap == 3] == 255).all()) and bool((mask[trimap == 1] == 1).all())


def test_val_split_is_stratified_by_breed(tmp_path):
    pet_tree(tmp_path, trainval=8, test=0)
    (tmp_path / "oxford-iiit-pet" / "annotations" / "test.txt").unlink()
    cfg = make_config(
        "segmentation", format="oxford_pet", root=str(tmp_path), val_fraction=0.5, test_fraction=0
    )
    splits, _ = build(cfg)
    breeds = [splits["val"].dataset.strata[i] for i in splits["val"].indices]
    assert sorted(breeds) == [0, 0, 1, 1]
    assert "test" not in splits  # no test.txt and test_fraction=0: no test split
