"""Class colours (the dataset's, else VOC), colourised masks, overlays and the figures."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from pixelwise.card import ModelCard
from pixelwise.cli.predict import save_segmentation
from pixelwise.config import ConfigError, DataConfig, load_config
from pixelwise.errors import MissingFileError, UserError
from pixelwise.viz.colors import IGNORE_COLOR, class_colors, configured_class_colors
from pixelwise.viz.segmentation import (
    background_index,
    colorize,
    overlay,
    palette,
    plot_overlays,
    plot_segmentation,
    segmentation_figure,
)

CAMVID = ["Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car",
          "Pedestrian", "Bicyclist"]  # fmt: skip


def test_palette_is_pascal_voc():
    colors = palette(6)
    assert colors.shape == (6, 3) and colors.dtype == np.uint8
    assert colors[:5].tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0], [0, 0, 128]]
    assert len({tuple(c) for c in palette(21)}) == 21  # every class its own colour


def test_given_colours_win_and_the_palette_fills_the_rest():
    assert class_colors(3).tolist() == palette(3).tolist()
    given = [(1, 2, 3), (4, 5, 6)]
    colors = class_colors(3, given)
    assert colors[:2].tolist() == [[1, 2, 3], [4, 5, 6]]
    assert colors[2].tolist() == palette(3)[2].tolist()


def test_config_colours_from_a_list_a_palette_image_and_a_named_json(tmp_path):
    listed = DataConfig(class_names=["a", "b"], class_colors=[[10, 20, 30], [40, 50, 60]])
    assert configured_class_colors(listed, ["a", "b"]) == ((10, 20, 30), (40, 50, 60))
    assert configured_class_colors(DataConfig(), ["a", "b"]) is None
    strip = np.array([[[200, 0, 0], [0, 200, 0], [0, 0, 200], [0, 0, 0]]], np.uint8)
    Image.fromarray(strip).save(tmp_path / "palette.png")  # CamVid ships such a strip
    by_image = DataConfig(root=str(tmp_path), class_colors="palette.png")  # under data.root
    assert configured_class_colors(by_image, ["a", "b"]) == ((200, 0, 0), (0, 200, 0))
    (tmp_path / "named.json").write_text(json.dumps({"road": [1, 1, 1], "sky": [2, 2, 2]}))
    by_name = DataConfig(class_colors=str(tmp_path / "named.json"))
    assert configured_class_colors(by_name, ["Sky", "Road"]) == ((2, 2, 2), (1, 1, 1))


def test_config_colour_mistakes_are_one_line(tmp_path):
    with pytest.raises(MissingFileError, match=r"data.class_colors=nowhere.png: no such file"):
        configured_class_colors(DataConfig(class_colors="nowhere.png"), ["a", "b"])
    (tmp_path / "one.txt").write_text("1 2 3\n")
    with pytest.raises(UserError, match="1 colours for 2 classes"):
        configured_class_colors(DataConfig(class_colors=str(tmp_path / "one.txt")), ["a", "b"])
    for value in ("[[1, 2, 3]]", "[[1, 2, 300], [1, 2, 3]]", "[[1, 2], [1, 2, 3]]"):
        with pytest.raises(ConfigError, match="'data.class_colors' needs one \\[r, g, b\\]"):
            load_config("digits", ["data.num_classes=2", f"data.class_colors={value}"])


def test_colours_travel_in_the_model_card(tmp_path):
    colors = [[128, 128, 128], [128, 0, 0]]
    cfg = load_config("digits", ["data.class_names=[sky, building]", f"data.class_colors={colors}"])
    card = ModelCard.from_config(cfg, ["sky", "building"])
    assert card.class_colors == ((128, 128, 128), (128, 0, 0))
    again = ModelCard.from_dict(json.loads(json.dumps(card.to_dict())))
    assert again.class_colors == card.class_colors
    plain = ModelCard.from_config(load_config("digits"), [str(d) for d in range(10)])
    assert plain.class_colors is None
    del_colors = {k: v for k, v in plain.to_dict().items() if k != "class_colors"}
    assert ModelCard.from_dict(del_colors).class_colors is None  # cards written before


def test_predict_overlays_use_the_card_colours(tmp_path):
    image = torch.full((3, 2, 2), 100, dtype=torch.uint8)
    result = SimpleNamespace(
        mask=np.array([[0, 1], [1, 1]], np.uint8),
        class_names=["sky", "road"],
        class_fractions=lambda: {},
    )
    save_segmentation(tmp_path, "x", image, result, ((0, 0, 0), (200, 0, 200)))
    blended = np.asarray(Image.open(tmp_path / "overlays" / "x.png"))
    assert blended[1, 1].tolist() == [150, 50, 150]  # (100 + 200) / 2, (100 + 0) / 2


def test_colorize_marks_ignored_pixels_white():
    mask = torch.tensor([[0, 1], [2, 255]])
    painted = colorize(mask, palette(3))
    assert painted.shape == (2, 2, 3)
    assert painted[0, 1].tolist() == [128, 0, 0]
    assert painted[1, 1].tolist() == list(IGNORE_COLOR) == [255, 255, 255]


def test_overlay_blends_classes_and_leaves_background_alone():
    image = np.full((2, 2, 3), 100, np.uint8)
    mask = np.array([[0, 1], [1, 0]])
    blended = overlay(image, mask, palette(2), alpha=0.5, background=0)
    assert blended[0, 0].tolist() == [100, 100, 100]
    assert blended[0, 1].tolist() == [114, 50, 50]  # (100 + 128) / 2, (100 + 0) / 2
    assert background_index(["background", "cat"]) == 0
    assert background_index(["sky", "road"]) is None


def camvid_like(count: int = 3, ignored: bool = True):
    torch.manual_seed(0)
    images = torch.randn(count, 3, 240, 320)
    targets = torch.randint(0, 11, (count, 240, 320))
    if ignored:
        targets[:, :12] = 255
    return images, targets, torch.randint(0, 11, (count, 240, 320))


def test_the_legend_names_the_ignored_white_where_the_truth_has_it():
    images, targets, predictions = camvid_like(1)
    fig = segmentation_figure(images, targets, predictions, CAMVID)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels[-1] == "ignored" and set(CAMVID) <= set(labels)
    images, targets, predictions = camvid_like(1, ignored=False)
    fig = segmentation_figure(images, targets, predictions, CAMVID)
    assert "ignored" not in [t.get_text() for t in fig.legends[0].get_texts()]


def test_rows_of_wide_images_have_no_gaps_between_them():
    images, targets, predictions = camvid_like(3)
    fig = segmentation_figure(images, targets, predictions, CAMVID, title="val")
    fig.canvas.draw()
    boxes = [ax.get_window_extent() for ax in fig.axes[::4]]  # the first column
    for upper, lower in zip(boxes, boxes[1:]):
        assert upper.y0 - lower.y1 < 0.05 * upper.height  # the gap, in pixels
    image_box = fig.axes[0].get_images()[0].get_window_extent()
    assert abs(image_box.height - boxes[0].height) < 2  # the image fills its box


def test_side_by_side_and_overlay_figures_are_written(tmp_path, check_picture):
    images, targets, predictions = camvid_like(3)
    colors = [[128, 128, 128], [128, 0, 0]] + palette(11)[2:].tolist()
    path = plot_segmentation(
        images, targets, predictions, CAMVID, tmp_path / "seg.png", colors=colors
    )
    check_picture(path, 800, 600)
    path = plot_overlays(images, predictions, CAMVID, tmp_path / "overlay.png", columns=2)
    picture = check_picture(path, 400, 400)
    assert picture.width < 600  # two columns, and a legend wrapped to fit them
