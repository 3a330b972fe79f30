from __future__ import annotations

import numpy as np
from data_fixtures import class_folders, make_config, mask_pairs, pixels, save

from pixelwise.data.check import check_data


def broken_mask_tree(root):
    """Two good pairs and one of each problem check must find."""
    mask_pairs(root, ["good1", "good2"])
    save(root / "images" / "nomask.jpg", pixels(12, 16))  # image without a mask
    save(root / "masks" / "noimage.png", np.zeros((12, 16), dtype=np.uint8))  # orphan mask
    save(root / "images" / "small.png", pixels(12, 16))
    save(root / "masks" / "small.png", np.zeros((6, 8), dtype=np.uint8))  # wrong size
    save(root / "images" / "range.png", pixels(12, 16))
    save(root / "masks" / "range.png", np.full((12, 16), 7, dtype=np.uint8))  # class 7 of 3
    (root / "images" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    save(root / "masks" / "corrupt.png", np.zeros((12, 16), dtype=np.uint8))
    good = (root / "images" / "good2.jpg").read_bytes()
    save(root / "masks" / "cut.png", np.zeros((12, 16), dtype=np.uint8))
    (root / "images" / "cut.jpg").write_bytes(good[: len(good) // 2])  # truncated
    return root


def test_check_finds_every_kind_of_problem(tmp_path):
    cfg = make_config(
        "segmentation",
        format="mask_folder",
        root=str(broken_mask_tree(tmp_path)),
        num_classes=3,
        val_fraction=0,
        test_fraction=0,
    )
    report = check_data(cfg)
    assert not report.ok
    errors = {(p.kind, p.path.rsplit("/", 1)[-1]) for p in report.errors}
    assert errors == {
        ("missing_mask", "nomask.jpg"),
        ("size_mismatch", "small.png"),
        ("out_of_range", "range.png"),
        ("unreadable", "corrupt.png"),
        ("unreadable", "cut.jpg"),
    }
    assert {p.kind for p in report.warnings} == {"missing_image"}
    train = report.splits["train"]
    assert train.items == 6 and train.readable == 2
    assert sum(train.class_counts) == 2 * 12 * 16 and train.sizes == {(12, 16): 2}
    assert report.to_dict()["ok"] is False


def test_check_passes_clean_data_and_counts_per_class(tmp_path):
    class_folders(tmp_path / "train", {"a": 3, "b": 2})
    class_folders(tmp_path / "test", {"a": 1, "b": 1}, size=(5, 5))
    cfg = make_config(format="image_folder", root=str(tmp_path), val_fraction=0)
    report = check_data(cfg)
    assert report.ok and not report.problems
    assert report.splits["train"].class_counts == [3, 2]
    assert report.splits["test"].sizes == {(5, 5): 2}


def test_check_reports_class_names_that_differ_between_splits(tmp_path):
    class_folders(tmp_path / "train", {"a": 2, "b": 2})
    class_folders(tmp_path / "test", {"a": 1, "z": 1})
    report = check_data(make_config(format="image_folder", root=str(tmp_path), val_fraction=0))
    assert not report.ok
    assert any(p.kind == "class_mismatch" and "z" in p.message for p in report.errors)
