from __future__ import annotations

import pytest
from data_fixtures import make_config, voc_tree

from pixelwise.data import FORMATS
from pixelwise.data.io import DataError


def test_voc2012_palette_masks_with_255_ignored(tmp_path):
    voc_tree(tmp_path, train=3, val=2)
    cfg = make_config(
        "segmentation", format="voc", root=str(tmp_path), ignore_index=255, test_fraction=0
    )
    splits, names = FORMATS["voc"](cfg.data, 0, None)
    assert len(names) == 21 and names[0] == "background" and names[15] == "person"
    assert len(splits["train"]) == 3 and len(splits["val"]) == 2
    image, mask = splits["train"][0]
    assert image.shape[-2:] == mask.shape
    assert bool((mask[0] == 255).all())  # the outline row
    assert int(mask[1:].max()) <= 20


def test_voc_outline_follows_a_different_ignore_index(tmp_path):
    voc_tree(tmp_path, train=2, val=1)
    root = tmp_path / "VOCdevkit" / "VOC2012"
    cfg = make_config(
        "segmentation", format="voc", root=str(root), ignore_index=-100, test_fraction=0
    )
    splits, _ = FORMATS["voc"](cfg.data, 0, None)
    _, mask = splits["val"][0]
    assert bool((mask[0] == -100).all())


def test_voc_missing_tree_says_what_is_expected(tmp_path):
    cfg = make_config("segmentation", format="voc", root=str(tmp_path))
    with pytest.raises(DataError, match="JPEGImages"):
        FORMATS["voc"](cfg.data, 0, None)
