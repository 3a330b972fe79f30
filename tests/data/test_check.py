from __future__ import annotations

import numpy as np
from data_fixtures import (
    class_folders,
    jpeg_mask_pairs,
    make_config,
    mask_pairs,
    pixels,
    save,
)

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


def test_check_reports_jpeg_masks_their_values_and_is_loud_once(tmp_path):
    jpeg_mask_pairs(tmp_path, count=3)
    cfg = make_config(
        "segmentation",
        format="mask_folder",
        root=str(tmp_path),
        mask_mode="binary",
        val_fraction=0,
        test_fraction=0,
    )
    report = check_data(cfg)
    assert report.ok  # nothing breaks training ...
    train = report.splits["train"]
    assert train.mask_kinds == {"JPEG L": 3} and train.image_kinds == {"JPEG RGB": 3}
    assert train.mask_values[0] > 0 and train.mask_values[255] > 0 and len(train.mask_values) > 10
    by_kind = {p.kind: p for p in report.warnings}
    assert set(by_kind) == {"lossy_mask", "too_many_values"}
    assert [p.kind for p in report.loud] == ["lossy_mask"]  # ... but the figures: loudly
    lossy = by_kind["lossy_mask"].message
    assert lossy.startswith("3 of 3 mask files are JPEG") and "as PNG" in lossy
    values = by_kind["too_many_values"].message
    assert "for 2 classes" in values and "0: " in values and "255: " in values
    assert "data.mask_threshold" in values
    saved = report.to_dict()["splits"]["train"]
    assert saved["mask_kinds"] == {"JPEG L": 3} and saved["mask_values"]["255"] > 0


def test_check_passes_png_binary_masks_without_findings(tmp_path):
    for i in range(2):
        save(tmp_path / "images" / f"{i}.png", pixels(6, 8, seed=i))
        save(
            tmp_path / "masks" / f"{i}.png",
            (np.arange(48).reshape(6, 8) % 2 * 255).astype(np.uint8),
        )
    cfg = make_config(
        "segmentation",
        format="mask_folder",
        root=str(tmp_path),
        mask_mode="binary",
        val_fraction=0,
        test_fraction=0,
    )
    report = check_data(cfg)
    assert report.ok and not report.problems
    assert report.splits["train"].mask_values == {0: 48, 255: 48}


def test_check_finds_copies_across_and_within_splits(tmp_path):
    class_folders(tmp_path / "train", {"a": 3, "b": 3})
    class_folders(tmp_path / "test", {"a": 2, "b": 2}, size=(5, 5))
    copy = (tmp_path / "train" / "b" / "001.png").read_bytes()
    (tmp_path / "test" / "b" / "copy.png").write_bytes(copy)  # a training image in test
    (tmp_path / "train" / "a" / "again.png").write_bytes(copy)  # and twice in train
    report = check_data(make_config(format="image_folder", root=str(tmp_path), val_fraction=0))
    assert report.ok
    assert report.splits["test"].items == 5  # nothing left out
    [loud] = report.loud
    assert loud.kind == "duplicates_across_splits" and loud.path.endswith("test/b/copy.png")
    assert loud.message.startswith("1 image(s) are in more than one split (1 of test in train")
    [within] = [p for p in report.warnings if p.kind == "duplicates_within_split"]
    assert "split 'train': 1 image(s)" in within.message and "again.png" in within.message


def test_check_does_not_follow_a_folder_link_back_into_the_dataset(tmp_path):
    root = class_folders(tmp_path / "data", {"class_a": 6, "class_b": 6})
    (root / "class_a" / "loop").symlink_to("..")
    cfg = make_config(format="image_folder", root=str(root), val_fraction=0.5, test_fraction=0)
    report = check_data(cfg)
    assert report.splits["train"].items + report.splits["val"].items == 12
    assert not report.loud  # no copies of training images in val
    assert [p.kind for p in report.warnings] == ["link_loop"]


def test_check_names_a_lone_placeholder_among_many_images(tmp_path):
    class_folders(tmp_path, {"a": 50, "b": 49}, size=(4, 4))
    save(tmp_path / "b" / "placeholder.gif", pixels(4, 4, seed=999), "P")
    cfg = make_config(format="image_folder", root=str(tmp_path), val_fraction=0, test_fraction=0)
    report = check_data(cfg)
    assert report.splits["train"].image_kinds == {"PNG RGB": 99, "GIF P": 1}
    [odd] = report.warnings
    assert odd.kind == "rare_image_kind" and odd.path.endswith("placeholder.gif")
    assert "the only GIF P image(s) among 100" in odd.message and "placeholder" in odd.message


def test_check_names_empty_and_non_image_files(tmp_path):
    class_folders(tmp_path, {"a": 2, "b": 2})
    (tmp_path / "a" / "empty.jpg").write_bytes(b"")
    (tmp_path / "b" / "page.jpg").write_bytes(b"<html><body>Forbidden</body></html>")
    cfg = make_config(format="image_folder", root=str(tmp_path), val_fraction=0, test_fraction=0)
    report = check_data(cfg)
    found = {(p.kind, p.path.rsplit("/", 1)[-1]) for p in report.errors}
    assert found == {("empty_file", "empty.jpg"), ("not_an_image", "page.jpg")}
    assert report.splits["train"].readable == 4  # the good files are all there


def test_stored_values_of_gray_and_colour_masks_are_reported_together():
    from collections import Counter

    from pixelwise.data.findings import histogram_text, json_histogram

    mixed = Counter({0: 10, 255: 5, (128, 64, 128): 3})
    assert json_histogram(mixed) == {"0": 10, "255": 5, "128,64,128": 3}
    assert histogram_text(mixed) == "0: 55.6%, 255: 27.8%, 128,64,128: 16.7%"


def test_check_states_resized_masks_and_images_without_a_valid_mask(tmp_path):
    for stem in ("a", "b", "c"):
        save(tmp_path / "images" / f"{stem}.png", pixels(8, 12))
    save(tmp_path / "masks" / "a.png", np.zeros((4, 6), dtype=np.uint8))  # half scale
    save(tmp_path / "masks" / "b.png", np.zeros((8, 12), dtype=np.uint8))
    save(tmp_path / "masks" / "c.png", np.zeros((8, 8), dtype=np.uint8))  # other aspect
    for stem in ("a", "c"):
        save(tmp_path / "fov" / f"{stem}.png", np.full((8, 12), 255, dtype=np.uint8))
    cfg = make_config(
        "segmentation",
        format="mask_folder",
        root=str(tmp_path),
        num_classes=2,
        val_fraction=0,
        test_fraction=0,
        resize_masks="nearest",
        valid_mask_dir="fov",
    )
    report = check_data(cfg)
    errors = {(p.kind, p.path.rsplit("/", 1)[-1]) for p in report.errors}
    assert errors == {("missing_valid_mask", "b.png"), ("size_mismatch", "c.png")}
    assert report.splits["train"].resized_masks == 1
    assert report.to_dict()["splits"]["train"]["resized_masks"] == 1
    assert any(p.kind == "resized_masks" and "1 mask(s)" in p.message for p in report.warnings)
