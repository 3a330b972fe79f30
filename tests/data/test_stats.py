from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from data_fixtures import make_config, save

from pixelwise.config import ConfigError
from pixelwise.data.io import DataError
from pixelwise.data.stats import (
    compute_stats,
    inverse_frequency_weights,
    median_frequency_weights,
    resolve_class_weights,
)


def constant_folders(root):
    """class a: two 2x2 images of gray 0 and 255; class b: one image of gray 51."""
    save(root / "a" / "0.png", np.zeros((2, 2), dtype=np.uint8))
    save(root / "a" / "1.png", np.full((2, 2), 255, dtype=np.uint8))
    save(root / "b" / "0.png", np.full((2, 2), 51, dtype=np.uint8))
    return root


def segmentation_tree(root):
    """Two 2x4 masks. Image 1: six pixels of class 0, two of class 1.
    Image 2: four of class 0, two of class 2 and two ignored (255)."""
    masks = [
        np.array([[0, 0, 0, 1], [0, 0, 0, 1]], dtype=np.uint8),
        np.array([[0, 0, 2, 255], [0, 0, 2, 255]], dtype=np.uint8),
    ]
    for i, mask in enumerate(masks):
        save(root / "images" / f"{i}.png", np.zeros((2, 4, 3), dtype=np.uint8))
        save(root / "masks" / f"{i}.png", mask)
    return root


def test_mean_and_std_by_hand(tmp_path):
    cfg = make_config(
        format="image_folder",
        root=str(constant_folders(tmp_path)),
        in_channels=1,
        val_fraction=0,
        test_fraction=0,
    )
    stats = compute_stats(cfg)
    values = np.array([0.0] * 4 + [1.0] * 4 + [0.2] * 4)
    assert stats.mean == pytest.approx([values.mean()], abs=1e-6)
    assert stats.std == pytest.approx([values.std()], abs=1e-6)
    assert stats.class_counts == [2, 1]
    # inverse frequency: N / (C * n_c) = 3 / (2 * 2), 3 / (2 * 1)
    assert stats.class_weights["inverse_frequency"] == pytest.approx([0.75, 1.5])
    # classification median frequency: f = (2/3, 1/3), median 0.5 -> 0.75, 1.5
    assert stats.class_weights["median_frequency"] == pytest.approx([0.75, 1.5])


def test_median_frequency_balancing_by_hand(tmp_path):
    cfg = make_config(
        "segmentation",
        format="mask_folder",
        root=str(segmentation_tree(tmp_path)),
        num_classes=3,
        val_fraction=0,
        test_fraction=0,
    )
    stats = compute_stats(cfg, pixel_stats=False)
    assert stats.class_counts == [10, 2, 2]
    # f_c = pixels of c / labelled pixels of the images where c appears:
    # f_0 = 10 / (8 + 6), f_1 = 2 / 8, f_2 = 2 / 6; median = 2/6
    f = [10 / 14, 2 / 8, 2 / 6]
    median = sorted(f)[1]
    assert stats.class_weights["median_frequency"] == pytest.approx([median / x for x in f])
    assert stats.class_weights["inverse_frequency"] == pytest.approx([14 / 30, 14 / 6, 14 / 6])
    assert stats.default_method == "median_frequency" and stats.mean is None


def test_absent_class_gets_weight_zero():
    assert inverse_frequency_weights([4, 0, 4]) == [1.0, 0.0, 1.0]
    assert median_frequency_weights([4, 0, 4]) == [1.0, 0.0, 1.0]


def test_resolve_class_weights_from_every_kind_of_setting(tmp_path):
    root = segmentation_tree(tmp_path / "data")
    data = dict(
        format="mask_folder", root=str(root), num_classes=3, val_fraction=0, test_fraction=0
    )
    assert resolve_class_weights(make_config("segmentation", **data).data, 3) is None
    listed = make_config("segmentation", class_weights=[1.0, 2.0, 3.0], **data).data
    assert torch.equal(resolve_class_weights(listed, 3), torch.tensor([1.0, 2.0, 3.0]))
    with pytest.raises(DataError, match="3 weights for 4 classes"):
        resolve_class_weights(listed, 4)

    method = make_config("segmentation", class_weights="inverse_frequency", **data).data
    run_dir = tmp_path / "run"
    weights = resolve_class_weights(method, 3, run_dir)
    assert weights.tolist() == pytest.approx([14 / 30, 14 / 6, 14 / 6])
    assert json.loads((run_dir / "class_weights.json").read_text())["method"] == "inverse_frequency"

    stats_file = tmp_path / "stats.json"
    stats_file.write_text(
        json.dumps(
            {
                "default_method": "median_frequency",
                "class_weights": {"median_frequency": [1, 2, 3], "inverse_frequency": [4, 5, 6]},
            }
        )
    )
    from_file = make_config("segmentation", class_weights=str(stats_file), **data).data
    assert resolve_class_weights(from_file, 3).tolist() == [1, 2, 3]
    chosen = make_config("segmentation", class_weights=f"{stats_file}:inverse_frequency", **data)
    assert resolve_class_weights(chosen.data, 3).tolist() == [4, 5, 6]
    missing = make_config("segmentation", class_weights="nowhere.json", **data).data
    with pytest.raises(DataError, match="pixelwise data stats"):
        resolve_class_weights(missing, 3)


def test_class_weight_power_tempers_every_kind_of_setting(tmp_path):
    root = segmentation_tree(tmp_path / "data")
    data = dict(
        format="mask_folder", root=str(root), num_classes=3, val_fraction=0, test_fraction=0
    )
    listed = dict(class_weights=[4.0, 0.0, 0.25], **data)
    square_root = make_config("segmentation", class_weight_power=0.5, **listed).data
    assert resolve_class_weights(square_root, 3).tolist() == [2.0, 0.0, 0.5]  # 0 stays 0
    off = make_config("segmentation", class_weight_power=0.0, **listed).data
    assert resolve_class_weights(off, 3).tolist() == [1.0, 0.0, 1.0]
    method = dict(class_weights="inverse_frequency", **data)
    full = resolve_class_weights(make_config("segmentation", **method).data, 3, tmp_path / "a")
    half = make_config("segmentation", class_weight_power=0.5, **method).data
    assert resolve_class_weights(half, 3, tmp_path / "b").tolist() == pytest.approx(
        full.sqrt().tolist()
    )
    with pytest.raises(
        ConfigError, match=r"'data.class_weight_power' must be a number >= 0, got -1.0"
    ):
        make_config("segmentation", class_weight_power=-1.0, **listed)
    with pytest.raises(ConfigError, match=r"tempers data.class_weights, which is not set"):
        make_config("segmentation", class_weight_power=0.5, **data)
