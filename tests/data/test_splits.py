from __future__ import annotations

import json
from collections import Counter

import pytest
from data_fixtures import make_config

from pixelwise.data.digits import build_digits
from pixelwise.data.io import DataError
from pixelwise.data.splits import load_or_make_splits, select_classes, stratified_split


def test_stratified_split_keeps_class_proportions():
    labels = [0] * 60 + [1] * 30 + [2] * 10
    splits = stratified_split(labels, 0.2, 0.1, seed=3)
    assert sorted(len(v) for v in splits.values()) == [10, 20, 70]
    assert sorted(sum(splits.values(), [])) == list(range(100))  # a partition
    val = Counter(labels[i] for i in splits["val"])
    assert val == {0: 12, 1: 6, 2: 2}


def test_tiny_classes_fall_back_to_a_plain_split():
    splits = stratified_split([0, 0, 1, 2, 2, 3], 0.34, 0.0, seed=0)
    assert len(splits["val"]) == 3 and len(splits["train"]) == 3


def test_split_file_is_written_once_and_read_back(tmp_path):
    path = tmp_path / "splits.json"
    labels = [0, 1] * 20
    first = load_or_make_splits(path, labels, 0.25, 0.25, seed=1)
    assert json.loads(path.read_text())["splits"] == first
    assert load_or_make_splits(path, labels, 0.5, 0.0, seed=7) == first
    with pytest.raises(DataError, match="changed"):
        load_or_make_splits(path, labels + [0], 0.25, 0.25, seed=1)


def test_legacy_flat_split_file_still_reads(tmp_path):
    path = tmp_path / "splits.json"
    path.write_text(json.dumps({"train": [0, 1], "val": [2]}))
    assert load_or_make_splits(path, [0, 1, 0], 0.2, 0.2, 0) == {"train": [0, 1], "val": [2]}


def test_digits_split_with_custom_split_names(tmp_path):
    cfg = make_config(format="digits", in_channels=1, val_split="dev", test_fraction=0)
    splits, names = build_digits(cfg.data, 0, tmp_path / "s.json")
    assert set(splits) == {"train", "dev"} and len(names) == 10
    assert len(splits["train"]) + len(splits["dev"]) == 1797


def test_include_classes_renumbers_and_samples_per_class_keeps_the_first(tmp_path):
    cfg = make_config(format="digits", in_channels=1, include_classes=[7, 3], samples_per_class=5)
    splits, names = build_digits(cfg.data, 0, None)
    selected, names = select_classes(splits, cfg.data, names)
    assert names == ["7", "3"]
    assert Counter(selected["train"].labels) == {0: 5, 1: 5}
    assert set(selected["val"].labels) == {0, 1} and len(selected["val"]) > 10
    image, label = selected["train"][0]
    assert label in (0, 1) and image.shape == (1, 8, 8)
    bad = make_config(format="digits", include_classes=[12])
    with pytest.raises(DataError, match="12"):
        select_classes(splits, bad.data, [str(i) for i in range(10)])
