from __future__ import annotations

import json

import pytest
import torch
from data_fixtures import class_folders, make_config, pixels, save

from pixelwise.data import FORMATS, build_datasets
from pixelwise.data.base import skipped_files
from pixelwise.data.io import DataError


def build(cfg, split_file=None):
    return FORMATS[cfg.data.format](cfg.data, cfg.seed, split_file)


def test_image_folder_with_own_splits_carves_val_from_train(tmp_path):
    class_folders(tmp_path / "train", {"dog": 6, "cat": 6})
    class_folders(tmp_path / "test", {"dog": 2, "cat": 2})
    cfg = make_config(format="image_folder", root=str(tmp_path), val_fraction=0.5)
    splits, names = build(cfg)
    assert names == ["cat", "dog"]  # sorted, as ImageFolder
    assert list(splits) == ["train", "val", "test"]
    assert [len(splits[s]) for s in ("train", "val", "test")] == [6, 6, 4]
    image, label = splits["test"][0]
    assert image.shape == (3, 8, 10) and image.dtype == torch.uint8 and label == 0
    val_labels = [splits["val"][i][1] for i in range(6)]
    assert sorted(val_labels) == [0, 0, 0, 1, 1, 1]  # stratified


def test_image_folder_pool_is_split_by_ratio(tmp_path):
    class_folders(tmp_path, {"a": 10, "b": 10})
    cfg = make_config(
        format="image_folder", root=str(tmp_path), val_fraction=0.2, test_fraction=0.2
    )
    splits, _ = build(cfg)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [12, 4, 4]


def test_split_is_saved_and_reused_even_with_another_seed(tmp_path):
    class_folders(tmp_path / "data", {"a": 10, "b": 10})
    split_file = tmp_path / "run" / "splits.json"
    cfg = make_config(format="image_folder", root=str(tmp_path / "data"))
    first, _ = build(cfg, split_file)
    assert split_file.is_file()
    saved = json.loads(split_file.read_text())
    assert saved["source_size"] == 20 and set(saved["splits"]) == {"train", "val", "test"}
    cfg.seed = 99
    again, _ = build(cfg, split_file)
    assert again["val"].indices == first["val"].indices
    fresh, _ = build(cfg)
    assert fresh["val"].indices != first["val"].indices  # the seed matters when nothing is saved


def test_saved_split_refuses_a_changed_dataset(tmp_path):
    class_folders(tmp_path / "data", {"a": 10, "b": 10})
    split_file = tmp_path / "splits.json"
    cfg = make_config(format="image_folder", root=str(tmp_path / "data"))
    build(cfg, split_file)
    save(tmp_path / "data" / "a" / "new.png", pixels(8, 10))
    with pytest.raises(DataError, match="changed"):
        build(cfg, split_file)


def test_class_folders_that_differ_between_splits(tmp_path):
    class_folders(tmp_path / "train", {"a": 2, "b": 2})
    class_folders(tmp_path / "val", {"a": 1, "c": 1})
    cfg = make_config(format="image_folder", root=str(tmp_path))
    with pytest.raises(DataError, match="lacks: c"):
        build(cfg)
    cfg.data.on_error = "skip"
    splits, _ = build(cfg)
    assert len(splits["val"]) == 1  # the unknown class is left out
    kinds = {(p.kind, p.severity) for p in splits["val"].problems}
    assert ("class_mismatch", "error") in kinds and ("class_mismatch", "warning") in kinds


def test_csv_with_header_names_and_relative_paths(tmp_path):
    for i in range(4):
        save(tmp_path / "img" / f"{i}.bmp", pixels(5, 6, seed=i), "RGB")
    (tmp_path / "list.csv").write_text(
        "path,label\nimg/0.bmp,zebra\nimg/1.bmp,ant\nimg/2.bmp,zebra\nimg/3.bmp,ant\n"
    )
    cfg = make_config(
        format="csv", root=str(tmp_path), list_file="list.csv", val_fraction=0.5, test_fraction=0
    )
    splits, names = build(cfg)
    assert names == ["ant", "zebra"]
    assert len(splits["train"]) == 2 and len(splits["val"]) == 2
    labels = sorted(splits["train"][i][1] for i in range(2))
    assert labels == [0, 1]


def test_csv_per_split_lists_with_integer_labels(tmp_path):
    for i in range(3):
        save(tmp_path / f"{i}.png", pixels(4, 4, seed=i))
    (tmp_path / "train.csv").write_text("0.png,0\n1.png,2\n")
    (tmp_path / "test.csv").write_text("2.png,1\n")
    cfg = make_config(format="csv", root=str(tmp_path), list_file="{split}.csv", val_fraction=0)
    splits, names = build(cfg)
    assert names == ["0", "1", "2"]
    assert set(splits) == {"train", "test"}
    assert splits["train"][1][1] == 2 and splits["test"][0][1] == 1


def test_csv_missing_file_is_named(tmp_path):
    (tmp_path / "l.csv").write_text("gone.png,0\n")
    cfg = make_config(format="csv", root=str(tmp_path), list_file="l.csv")
    with pytest.raises(DataError, match="gone.png"):
        build(cfg)


def test_on_error_skip_skips_logs_and_counts(tmp_path):
    class_folders(tmp_path / "data" / "train", {"a": 3, "b": 3})
    (tmp_path / "data" / "train" / "a" / "001.png").write_bytes(b"broken")
    run_dir = tmp_path / "run"
    cfg = make_config(
        format="image_folder",
        root=str(tmp_path / "data"),
        val_fraction=0,
        test_fraction=0,
        image_size=[8, 10],
        augment="none",
    )
    splits = build_datasets(cfg, run_dir)
    with pytest.raises(DataError, match="001.png"):
        splits.datasets["train"][1]
    cfg.data.on_error = "skip"
    splits = build_datasets(cfg, run_dir)
    items = [splits.datasets["train"][i] for i in range(6)]
    assert all(image.shape == (3, 8, 10) for image, _ in items)
    skipped = skipped_files(run_dir)
    assert list(skipped) == [str(tmp_path / "data" / "train" / "a" / "001.png")]
    assert "corrupt" in next(iter(skipped.values())) or "cannot" in next(iter(skipped.values()))
