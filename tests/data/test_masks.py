from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from data_fixtures import (
    blocks_mask,
    disk_mask,
    jpeg_mask_pairs,
    make_config,
    mask_pairs,
    pixels,
    save,
)
from PIL import Image

from pixelwise.data import FORMATS
from pixelwise.data.io import DataError, MaskSizeError, MaskValueError
from pixelwise.data.masks import load_palette


def build(cfg):
    return FORMATS[cfg.data.format](cfg.data, cfg.seed, None)


def seg(**data):
    data.setdefault("val_fraction", 0)
    data.setdefault("test_fraction", 0)
    return make_config("segmentation", format="mask_folder", **data)


def test_pairs_by_stem_with_suffix_and_index_masks(tmp_path):
    mask_pairs(tmp_path, ["b", "a", "c"], suffix="_mask")
    splits, names = build(seg(root=str(tmp_path), num_classes=3, mask_suffix="_mask"))
    train = splits["train"]
    assert names == ["0", "1", "2"] and len(train) == 3
    assert train.images[0].endswith("a.jpg") and train.masks[0].endswith("a_mask.png")
    image, mask = train[0]
    assert image.shape == (3, 12, 16) and mask.shape == (12, 16)
    assert torch.equal(mask, torch.from_numpy(blocks_mask(12, 16, 3, seed=1)))


def test_split_folders_with_a_split_placeholder(tmp_path):
    mask_pairs(tmp_path, ["x", "y"], image_dir="train", mask_dir="trainannot")
    mask_pairs(tmp_path, ["z"], image_dir="val", mask_dir="valannot")
    cfg = seg(root=str(tmp_path), num_classes=3, image_dir="{split}", mask_dir="{split}annot")
    splits, _ = build(cfg)
    assert len(splits["train"]) == 2 and len(splits["val"]) == 1 and "test" not in splits


def test_split_subfolders_with_images_and_masks(tmp_path):
    mask_pairs(tmp_path / "train", ["x", "y"])
    mask_pairs(tmp_path / "test", ["z"])
    splits, _ = build(seg(root=str(tmp_path), num_classes=3))
    assert len(splits["train"]) == 2 and len(splits["test"]) == 1


def test_camvid_list_file_with_segnet_prefix(tmp_path):
    mask_pairs(
        tmp_path, ["0001TP_006690", "0001TP_006720"], image_dir="train", mask_dir="trainannot"
    )
    mask_pairs(tmp_path, ["0016E5_07959"], image_dir="val", mask_dir="valannot")
    for split, stems in (("train", ["0001TP_006690", "0001TP_006720"]), ("val", ["0016E5_07959"])):
        lines = [
            f"/SegNet/CamVid/{split}/{s}.jpg /SegNet/CamVid/{split}annot/{s}.png" for s in stems
        ]
        (tmp_path / f"{split}.txt").write_text("\n".join(lines) + "\n")
    cfg = seg(root=str(tmp_path), list_file="{split}.txt", num_classes=3)
    splits, _ = build(cfg)
    assert len(splits["train"]) == 2 and len(splits["val"]) == 1
    assert splits["val"].images[0] == str(tmp_path / "val" / "0016E5_07959.jpg")
    assert splits["train"][1][1].shape == (12, 16)


def test_listed_pair_that_does_not_exist_is_named(tmp_path):
    mask_pairs(tmp_path, ["a"])
    (tmp_path / "train.txt").write_text("images/a.jpg masks/a.png\nimages/b.jpg masks/b.png\n")
    cfg = seg(root=str(tmp_path), list_file="train.txt", num_classes=3)
    with pytest.raises(DataError, match="b.jpg"):
        build(cfg)


def test_binary_masks_map_255_to_one_not_to_ignore(tmp_path):
    save(tmp_path / "images" / "a.png", pixels(4, 4))
    values = np.array([[0, 255, 255, 0]] * 4, dtype=np.uint8)
    save(tmp_path / "masks" / "a.png", values)
    splits, names = build(seg(root=str(tmp_path), mask_mode="binary"))
    assert names == ["background", "foreground"]
    mask = splits["train"][0][1]
    assert torch.equal(mask, torch.from_numpy(values // 255))
    values[0, 0] = 128  # a "don't care" value
    save(tmp_path / "masks" / "a.png", values)
    splits, _ = build(seg(root=str(tmp_path), mask_mode="binary", mask_ignore_values=[128]))
    mask = splits["train"][0][1]
    assert mask[0].tolist() == [255, 1, 1, 0] and mask[1].tolist() == [0, 1, 1, 0]


def test_binary_jpeg_masks_are_thresholded_at_the_midpoint(tmp_path):
    # JPEG smears each 0/255 edge into a halo of small values; counting every non-zero
    # value as foreground doubled these disks
    jpeg_mask_pairs(tmp_path, count=3)
    train = build(seg(root=str(tmp_path), mask_mode="binary"))[0]["train"]
    for i in range(3):
        truth = torch.from_numpy(disk_mask(30, 40, seed=i) // 255)
        assert torch.equal(train[i][1].as_subclass(torch.Tensor), truth)  # nothing lost
    old_rule = build(seg(root=str(tmp_path), mask_mode="binary", mask_threshold=1))[0]["train"]
    assert int(old_rule[0][1].sum()) > int(train[0][1].sum()) * 3 // 2  # the halo, by choice


def test_binary_threshold_keeps_zero_one_masks_and_ignored_values(tmp_path):
    save(tmp_path / "images" / "a.png", pixels(2, 4))
    values = np.array([[0, 1, 1, 9], [1, 0, 9, 0]], dtype=np.uint8)  # 0/1 masks, 9: ignore
    save(tmp_path / "masks" / "a.png", values)
    train = build(seg(root=str(tmp_path), mask_mode="binary", mask_ignore_values=[9]))[0]["train"]
    assert train[0][1].tolist() == [[0, 1, 1, 255], [1, 0, 255, 0]]
    train = build(seg(root=str(tmp_path), mask_mode="binary", mask_threshold=5))[0]["train"]
    assert train[0][1].tolist() == [[0, 0, 0, 1], [0, 0, 1, 0]]


def test_mask_threshold_must_be_positive():
    from pixelwise.config import ConfigError

    with pytest.raises(ConfigError, match="'data.mask_threshold' must be > 0"):
        seg(mask_mode="binary", mask_threshold=0)


def test_images_and_masks_in_one_folder_told_apart_by_a_suffix(tmp_path):
    mask_pairs(tmp_path, ["a", "b"], image_dir="data", mask_dir="data", suffix="_mask")
    cfg = seg(root=str(tmp_path), num_classes=3, image_dir="data", mask_dir="data")
    with pytest.raises(DataError, match="set data.mask_suffix"):
        build(cfg)
    cfg.data.mask_suffix = "_mask"
    train = build(cfg)[0]["train"]
    assert [p.rsplit("/", 1)[-1] for p in train.images] == ["a.jpg", "b.jpg"]
    assert [p.rsplit("/", 1)[-1] for p in train.masks] == ["a_mask.png", "b_mask.png"]


def test_names_that_do_not_pair_are_shown_with_the_keys_that_pair_them(tmp_path):
    for i in (21, 22, 23, 24):  # DRIVE: 21_training.tif with 21_manual1.gif
        save(tmp_path / "images" / f"{i}_training.tif", pixels(6, 6))
        save(tmp_path / "masks" / f"{i}_manual1.gif", np.zeros((6, 6), dtype=np.uint8))
    cfg = seg(root=str(tmp_path), mask_mode="binary", val_fraction=0.25)
    for on_error in ("raise", "skip"):  # data check builds with skip
        cfg.data.on_error = on_error
        with pytest.raises(DataError) as caught:
            build(cfg)
        message = str(caught.value)
        assert "\n" not in message and "no image/mask pairs" in message
        assert "21_training.tif, 22_training.tif, 23_training.tif" in message
        assert "21_manual1.gif" in message and "'_training'" in message
        assert "data.list_file" in message and "data.mask_suffix" in message


def test_a_missing_mask_suffix_is_suggested(tmp_path):
    mask_pairs(tmp_path, ["a", "b"], suffix="_mask")
    with pytest.raises(DataError, match="data.mask_suffix: '_mask' would pair 2 of 2"):
        build(seg(root=str(tmp_path), num_classes=3))


def test_rgb_masks_with_a_text_palette_and_an_ignore_colour(tmp_path):
    colours = {(0, 0, 0): 0, (255, 0, 0): 1, (0, 255, 0): 2}
    (tmp_path / "palette.txt").write_text(
        "# R G B name\n0 0 0 road\n255 0 0 car\n0 255 0 tree\n255 255 255 ignore\n"
    )
    index = blocks_mask(8, 8, 4, block=2)
    table = np.array([*colours, (255, 255, 255)], dtype=np.uint8)
    save(tmp_path / "images" / "a.png", pixels(8, 8))
    save(tmp_path / "masks" / "a.png", table[index])
    cfg = seg(root=str(tmp_path), mask_mode="rgb", palette=str(tmp_path / "palette.txt"))
    splits, names = build(cfg)
    assert names == ["road", "car", "tree"]
    mask = splits["train"][0][1]
    expected = torch.from_numpy(np.where(index == 3, 255, index).astype(np.uint8))
    assert torch.equal(mask, expected)


def test_rgb_palette_as_json_and_as_image(tmp_path):
    (tmp_path / "p.json").write_text(json.dumps({"sky": [1, 2, 3], "sea": [4, 5, 6]}))
    colours, names = load_palette(tmp_path / "p.json")
    assert names == ["sky", "sea"] and colours.tolist() == [[1, 2, 3], [4, 5, 6]]
    strip = np.array([[[1, 2, 3], [4, 5, 6], [0, 0, 0], [0, 0, 0]]], dtype=np.uint8)
    Image.fromarray(strip).save(tmp_path / "palette.png")  # as CamVid's palette.png
    colours, _ = load_palette(tmp_path / "palette.png", count=2)
    assert colours.tolist() == [[1, 2, 3], [4, 5, 6]]
    with pytest.raises(DataError, match="num_classes"):
        load_palette(tmp_path / "palette.png")


def test_unknown_colour_is_an_error_naming_the_mask(tmp_path):
    (tmp_path / "palette.txt").write_text("0 0 0\n255 0 0\n")
    save(tmp_path / "images" / "a.png", pixels(2, 2))
    save(tmp_path / "masks" / "a.png", np.full((2, 2, 3), 9, dtype=np.uint8))
    cfg = seg(root=str(tmp_path), mask_mode="rgb", palette=str(tmp_path / "palette.txt"))
    splits, _ = build(cfg)
    with pytest.raises(MaskValueError, match="a.png.*not in data.palette"):
        splits["train"][0]


def test_values_out_of_range_and_ignore_values(tmp_path):
    save(tmp_path / "images" / "a.png", pixels(3, 3))
    save(tmp_path / "masks" / "a.png", np.array([[0, 1, 11]] * 3, dtype=np.uint8))
    splits, _ = build(seg(root=str(tmp_path), num_classes=11))
    with pytest.raises(MaskValueError, match=r"masks/a.png: mask values \[11\]"):
        splits["train"][0]
    splits, _ = build(seg(root=str(tmp_path), num_classes=11, mask_ignore_values=[11]))
    assert splits["train"][0][1][0].tolist() == [0, 1, 255]


def test_mask_of_the_wrong_size_is_an_error(tmp_path):
    save(tmp_path / "images" / "a.png", pixels(4, 6))
    save(tmp_path / "masks" / "a.png", np.zeros((4, 5), dtype=np.uint8))
    splits, _ = build(seg(root=str(tmp_path), num_classes=2))
    with pytest.raises(MaskSizeError, match="5x4 but its image"):
        splits["train"][0]


def test_image_without_mask_raises_or_is_left_out(tmp_path):
    mask_pairs(tmp_path, ["a", "b"])
    save(tmp_path / "images" / "lonely.jpg", pixels(12, 16))
    save(tmp_path / "masks" / "orphan.png", np.zeros((12, 16), dtype=np.uint8))
    with pytest.raises(DataError, match="lonely.jpg: no mask"):
        build(seg(root=str(tmp_path), num_classes=3))
    splits, _ = build(seg(root=str(tmp_path), num_classes=3, on_error="skip"))
    assert len(splits["train"]) == 2
    kinds = {(p.kind, p.severity) for p in splits["train"].problems}
    assert kinds == {("missing_mask", "error"), ("missing_image", "warning")}


def test_index_masks_need_a_class_count(tmp_path):
    mask_pairs(tmp_path, ["a"])
    with pytest.raises(DataError, match="num_classes"):
        build(seg(root=str(tmp_path)))


def test_palette_png_masks_are_read_as_indices(tmp_path):
    save(tmp_path / "images" / "a.png", pixels(2, 3))
    indices = np.array([[0, 1, 2], [2, 1, 0]], dtype=np.uint8)
    image = Image.frombytes("P", (3, 2), indices.tobytes())
    image.putpalette([200, 10, 10, 10, 200, 10, 10, 10, 200])
    (tmp_path / "masks").mkdir()
    image.save(tmp_path / "masks" / "a.png")
    splits, _ = build(seg(root=str(tmp_path), num_classes=3))
    assert torch.equal(splits["train"][0][1], torch.from_numpy(indices))


# --------------------------------------------------------------------------- valid regions
def fov_tree(root, suffix="_mask"):
    """One 4x6 image, a mask of class 1 left and 0 right, a valid region of columns 0..3."""
    save(root / "images" / "21_training.png", pixels(4, 6))
    save(root / "masks" / "21_training.png", np.array([[1, 1, 1, 0, 0, 0]] * 4, dtype=np.uint8))
    fov = np.zeros((4, 6), dtype=np.uint8)
    fov[:, :4] = 255
    save(root / "fov" / f"21_training{suffix}.gif", fov)
    return root


def test_pixels_outside_the_valid_region_are_ignored(tmp_path):
    fov_tree(tmp_path)
    cfg = seg(root=str(tmp_path), num_classes=2, valid_mask_dir="fov", valid_mask_suffix="_mask")
    splits, _ = build(cfg)
    _, mask = splits["train"][0]
    assert mask[0].tolist() == [1, 1, 1, 0, 255, 255]
    assert splits["train"].load_target(0)[0].tolist() == [1, 1, 1, 0, 255, 255]


def test_figures_are_computed_inside_the_valid_region_only(tmp_path):
    from pixelwise.metrics import ConfusionMatrix

    fov_tree(tmp_path)
    cfg = seg(root=str(tmp_path), num_classes=2, valid_mask_dir="fov", valid_mask_suffix="_mask")
    splits, _ = build(cfg)
    target = splits["train"][0][1].as_subclass(torch.Tensor).long()[None]
    right = torch.tensor([[1, 1, 1, 0, 0, 0]] * 4)[None]
    wrong_outside = right.clone()
    wrong_outside[..., 4:] = 1  # mispredicted, but outside the field of view
    figures = []
    for preds in (right, wrong_outside):
        matrix = ConfusionMatrix(2, ignore_index=255)
        matrix.update(preds, target)
        figures.append(matrix.compute("segmentation"))
        assert int(matrix.matrix.sum()) == 4 * 4  # only the 16 pixels inside are counted
    assert figures[0]["pixel_accuracy"] == figures[1]["pixel_accuracy"] == 1.0
    assert figures[0]["miou"] == figures[1]["miou"] == 1.0


def test_image_without_a_valid_mask_is_an_error_or_left_out(tmp_path):
    fov_tree(tmp_path)
    save(tmp_path / "images" / "22_training.png", pixels(4, 6))
    save(tmp_path / "masks" / "22_training.png", np.zeros((4, 6), dtype=np.uint8))
    keys = dict(num_classes=2, valid_mask_dir="fov", valid_mask_suffix="_mask")
    with pytest.raises(DataError, match="22_training.png: no valid-region mask 22_training_mask"):
        build(seg(root=str(tmp_path), **keys))
    splits, _ = build(seg(root=str(tmp_path), on_error="skip", **keys))
    assert len(splits["train"]) == 1
    assert [p.kind for p in splits["train"].problems] == ["missing_valid_mask"]


def test_valid_mask_folder_that_does_not_exist_is_named(tmp_path):
    fov_tree(tmp_path)
    with pytest.raises(DataError, match="data.valid_mask_dir=nowhere: no folder"):
        build(seg(root=str(tmp_path), num_classes=2, valid_mask_dir="nowhere"))


# --------------------------------------------------------------------------- resize_masks
def test_mask_at_half_scale_is_resized_by_nearest_neighbour(tmp_path):
    save(tmp_path / "images" / "a.png", pixels(8, 12))
    small = np.array([[0, 1, 2, 0, 1, 2]] * 4, dtype=np.uint8)
    save(tmp_path / "masks" / "a.png", small)
    with pytest.raises(MaskSizeError, match="data.resize_masks=nearest"):
        build(seg(root=str(tmp_path), num_classes=3))[0]["train"][0]
    splits, _ = build(seg(root=str(tmp_path), num_classes=3, resize_masks="nearest"))
    _, mask = splits["train"][0]
    assert mask.shape == (8, 12)
    assert torch.equal(mask, torch.from_numpy(np.kron(small, np.ones((2, 2), dtype=np.uint8))))
    _, _, facts = splits["train"].inspect(0)
    assert facts.mask_resized


def test_rounded_uniform_scale_is_resized_and_another_aspect_is_refused(tmp_path):
    save(tmp_path / "images" / "a.png", pixels(584, 565, seed=1))
    save(tmp_path / "masks" / "a.png", np.ones((292, 282), dtype=np.uint8))  # DRIVE at 1/2
    save(tmp_path / "images" / "b.png", pixels(8, 12))
    save(tmp_path / "masks" / "b.png", np.ones((8, 8), dtype=np.uint8))  # another aspect
    splits, _ = build(seg(root=str(tmp_path), num_classes=2, resize_masks="nearest"))
    assert splits["train"][0][1].shape == (584, 565)
    with pytest.raises(MaskSizeError, match="b.png: mask is 8x8 .* the aspect ratios differ"):
        splits["train"][1]
