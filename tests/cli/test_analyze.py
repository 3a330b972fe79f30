"""``pixelwise analyze``: the per-layer table, one layer by hand, pictures of a run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixelwise.card import ModelCard
from pixelwise.checkpoint import save_checkpoint
from pixelwise.cli import main
from pixelwise.config import load_config, save_config
from pixelwise.engine.build import build_model


@pytest.fixture(scope="module")
def untrained_run(tmp_path_factory) -> Path:
    """A run directory as training leaves it, with an untrained model: pictures need no accuracy."""
    run_dir = tmp_path_factory.mktemp("run")
    cfg = load_config("digits", ["model.options={width: 4, dropout: 0.0}"])
    save_config(cfg, run_dir / "config.yaml")
    names = [str(d) for d in range(10)]
    model = build_model(cfg, len(names))
    state = {
        "model": model.state_dict(),
        "epoch": 0,
        "card": ModelCard.from_config(cfg, names).to_dict(),
    }
    save_checkpoint(state, run_dir / "checkpoints" / "best.pt")
    return run_dir


@pytest.fixture(scope="module")
def untrained_segmentation_run(tmp_path_factory) -> Path:
    """A segmentation run as training leaves it: a small U-Net, digit canvases."""
    run_dir = tmp_path_factory.mktemp("segmentation_run")
    overrides = [
        "task=segmentation",
        "data.format=digits_segmentation",
        "data.image_size=[32, 32]",
        "data.num_samples=40",
        "model.name=unet",
        "model.options={base_channels: 4}",
        "train.best_metric=val/miou",
    ]
    cfg = load_config("digits", overrides)
    save_config(cfg, run_dir / "config.yaml")
    names = ["background", *(str(d) for d in range(10))]
    state = {
        "model": build_model(cfg, len(names)).state_dict(),
        "epoch": 0,
        "card": ModelCard.from_config(cfg, names).to_dict(),
    }
    save_checkpoint(state, run_dir / "checkpoints" / "best.pt")
    return run_dir


def assert_picture(path: Path, min_width: int, min_height: int) -> None:
    """Opens, has a size, and is not blank (many colours, none covering nearly all)."""
    with Image.open(path) as picture:
        assert picture.width >= min_width and picture.height >= min_height
        colors = picture.convert("RGB").getcolors(maxcolors=1 << 24) or []
        assert len(colors) > 8
        assert max(count for count, _ in colors) < 0.9 * picture.width * picture.height


def test_table_of_a_zoo_model(capsys):
    assert main(["analyze", "vgg16"]) == 0
    out = capsys.readouterr().out
    conv5_3 = next(line for line in out.splitlines() if line.startswith("features.28 "))
    assert conv5_3.split()[-2:] == ["196", "16"]  # receptive field, cumulative stride
    assert "2,359,808" in conv5_3 and "462,422,016" in conv5_3
    assert "total parameters" in out and "138,357,544" in out
    assert "15.47G" in out and "FLOPs 30,940,578,816" in out
    assert "FLOPs = 2 x MACs" in out and "disagree" in out


def test_layer_formula_and_input_size(capsys):
    assert main(["analyze", "resnet18", "--input-size", "3x64x64", "--layer", "conv1"]) == 0
    out = capsys.readouterr().out
    assert "resnet18 at 3x64x64" in out
    assert "H' = floor((64 + 2·3 - 1·(7 - 1) - 1) / 2) + 1 = 32" in out
    assert "r = r_in + (k - 1)·d·j_in = 1 + (7 - 1)·1·1 = 7" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["analyze", "vgg16", "--input-size", "3xbig"],
        ["analyze", "vgg61"],
        ["analyze", "vgg16", "--layer", "features.99"],
        ["analyze", "small_cnn", "--tsne"],
    ],
)
def test_user_errors_are_one_line(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("pixelwise analyze: error:")


def test_table_of_a_run_uses_its_input_size(untrained_run, capsys):
    assert main(["analyze", str(untrained_run)]) == 0
    out = capsys.readouterr().out
    assert "small_cnn" in out and "at 1x16x16" in out


def test_feature_maps_and_gradcam_of_split_images(untrained_run, capsys):
    out_dir = untrained_run / "pictures"
    argv = ["analyze", str(untrained_run), "--features", "stages.0", "--gradcam", "--count", "2"]
    assert main([*argv, "--output", str(out_dir)]) == 0
    printed = capsys.readouterr().out
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "features_stages.0_0.png",
        "features_stages.0_1.png",
        "gradcam.png",
    ]
    assert printed.count("written:") == 3
    assert_picture(out_dir / "gradcam.png", 900, 300)


def test_gradcam_of_a_segmentation_run_explains_one_class(untrained_segmentation_run, capsys):
    run_dir, out_dir = untrained_segmentation_run, untrained_segmentation_run / "cams"
    argv = ["analyze", str(run_dir), "--gradcam", "--count", "2", "--output", str(out_dir)]
    assert main([*argv, "--gradcam-class", "7"]) == 0
    assert capsys.readouterr().out.strip() == f"written: {out_dir / 'gradcam.png'}"
    assert_picture(out_dir / "gradcam.png", 500, 250)
    assert main([*argv, "--gradcam-class", "Background"]) == 0  # names in any case
    assert main([*argv, "--gradcam-class", "cat"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--gradcam-class 'cat': not a class" in err
    assert "background, 0, 1" in err


def test_image_files_and_tsne(untrained_run, tmp_path, capsys):
    picture = tmp_path / "digit.png"
    Image.fromarray(np.eye(12, dtype=np.uint8) * 255).save(picture)
    argv = ["analyze", str(untrained_run), "--features", "stem.0", "--image", str(picture)]
    assert main(argv) == 0
    assert (untrained_run / "analysis" / "features_stem.0_0.png").is_file()
    assert main(["analyze", str(untrained_run), "--tsne", "--samples", "40"]) == 0
    assert (untrained_run / "analysis" / "tsne_test.png").is_file()
    assert (
        main(["analyze", str(untrained_run), "--gradcam", "--image", str(tmp_path / "no.png")]) == 2
    )
