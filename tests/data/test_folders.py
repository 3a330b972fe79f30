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
    assert "001.png: not an image" in next(iter(skipped.values()))


def test_a_folder_link_back_into_the_dataset_lists_nothing_twice(tmp_path):
    # class_a/loop -> .. listed class_a's images again under loop/class_a/loop/... up to
    # the system's limit of nested links, and carved copies of them into val
    root = class_folders(tmp_path / "data", {"class_a": 4, "class_b": 4})
    (root / "class_a" / "loop").symlink_to("..")
    (root / "class_b" / "same.png").symlink_to(root / "class_a" / "000.png")
    outside = class_folders(tmp_path / "elsewhere", {"extra": 2})  # a link out: followed
    (root / "class_b" / "more").symlink_to(outside / "extra")
    cfg = make_config(format="image_folder", root=str(root), val_fraction=0.25, test_fraction=0)
    splits, names = build(cfg)
    assert names == ["class_a", "class_b"]
    listed = [
        p for s in ("train", "val") for p in (splits[s].dataset.paths[i] for i in splits[s].indices)
    ]
    assert len(listed) == len(set(listed)) == 10  # every real image once, nothing lost
    assert sum("/loop/" in p for p in listed) == 0 and sum("/more/" in p for p in listed) == 2
    kinds = {(p.kind, p.path.rsplit("/", 1)[-1]) for p in splits["train"].dataset.problems}
    assert kinds == {("link_loop", "loop"), ("duplicate_file", "same.png")}


def test_a_class_folder_without_images_is_refused_naming_it(tmp_path):
    root = class_folders(tmp_path / "data", {"a": 3, "b": 3})
    (root / "c").mkdir()
    cfg = make_config(format="image_folder", root=str(root), val_fraction=0, test_fraction=0)
    with pytest.raises(
        DataError, match=r"/c: no image files \(the folder is empty\), so class 'c'"
    ):
        build(cfg)
    (root / "c" / "notes.txt").write_text("to do: download class c")
    (root / "c" / "c.zip").write_bytes(b"PK")
    with pytest.raises(
        DataError, match=r"/c: no image files \(it holds 2 entries: c.zip, notes.txt"
    ):
        build(cfg)
    cfg.data.class_names = ["a", "b", "c"]  # listed explicitly: kept, with a warning
    splits, names = build(cfg)
    assert names == ["a", "b", "c"] and len(splits["train"]) == 6
    assert [p.kind for p in splits["train"].problems] == ["empty_class"]


def test_class_folders_holding_only_non_images_are_named_not_split(tmp_path):
    for name in ("cats", "dogs"):
        for i in range(3):
            (tmp_path / name).mkdir(exist_ok=True)
            (tmp_path / name / f"{i}.heic").write_bytes(b"\x00\x00\x00\x18ftypheic")
    cfg = make_config(format="image_folder", root=str(tmp_path), on_error="skip")
    with pytest.raises(DataError, match=r"/cats: no image files \(it holds 3 entries: 0.heic"):
        build(cfg)


def test_images_without_class_folders_are_explained(tmp_path):
    for i in range(3):
        save(tmp_path / f"{i}.png", pixels(4, 4, seed=i))
    cfg = make_config(format="image_folder", root=str(tmp_path))
    with pytest.raises(DataError, match=r"no class folders in .* \(it holds 3 entries: 0.png"):
        build(cfg)
