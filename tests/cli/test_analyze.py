"""``pixelwise analyze``: the per-layer table, one layer by hand, pictures of a run."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixelwise.card import ModelCard
from pixelwise.checkpoint import save_checkpoint
from pixelwise.cli import main
from pixelwise.cli.analyze import parse_input_size
from pixelwise.config import load_config, save_config
from pixelwise.engine.build import build_model
from pixelwise.errors import UserError


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
        ["analyze", "resnet18", "--input-size", "3x32"],
        ["analyze", "resnet18", "--input-size", "3x16x16"],
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
    gradcam = next(p.name for p in out_dir.iterdir() if p.name.startswith("gradcam"))
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "features_stages.0_test-0.png",  # layer, then image 0 of the test split
        "features_stages.0_test-269.png",
        gradcam,
    ]
    assert gradcam.endswith("_test-2images.png")  # its layer, then the images
    assert printed.count("written:") == 3
    assert_picture(out_dir / gradcam, 900, 300)


def test_gradcam_of_a_segmentation_run_explains_one_class(untrained_segmentation_run, capsys):
    run_dir, out_dir = untrained_segmentation_run, untrained_segmentation_run / "cams"
    argv = ["analyze", str(run_dir), "--gradcam", "--count", "2", "--output", str(out_dir)]
    assert main([*argv, "--gradcam-class", "7"]) == 0
    written = capsys.readouterr().out.strip().removeprefix("written: ")
    assert written.startswith(str(out_dir / "gradcam-7_")), written  # names the class
    assert_picture(Path(written), 500, 250)
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
    assert (untrained_run / "analysis" / "features_stem.0_digit.png").is_file()
    assert main(["analyze", str(untrained_run), "--tsne", "--samples", "40"]) == 0
    assert (untrained_run / "analysis" / "tsne_stages.0+penultimate_test-40images.png").is_file()
    assert (
        main(["analyze", str(untrained_run), "--gradcam", "--image", str(tmp_path / "no.png")]) == 2
    )


@pytest.mark.parametrize(
    ("text", "size"),
    [("3x224x224", (3, 224, 224)), ("224x160", (1, 224, 160)), ("64", (1, 64, 64))],
)
def test_input_sizes_people_type(text, size):
    assert parse_input_size(text, channels=1) == size


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("3x32", "'3x32' is ambiguous: as HxW it is 3 pixel(s) high and 32 wide; write 3x32x32"),
        (
            "224x224x3",
            "reads as 224 channels of 224x3: channels come first (CxHxW), e.g. 3x224x224",
        ),
        ("3xbig", "expected CxHxW, HxW or one side"),
        ("0x32", "expected CxHxW, HxW or one side"),
        ("1x3x32x32", "expected CxHxW, HxW or one side"),
    ],
)
def test_ambiguous_or_invalid_input_sizes_are_refused(text, message):
    with pytest.raises(UserError, match=re.escape(message)):
        parse_input_size(text)


def test_a_size_below_the_total_stride_is_refused(capsys):
    assert main(["analyze", "resnet18", "--input-size", "3x16x16"]) == 2
    err = capsys.readouterr().err
    assert "3x16x16 is smaller than resnet18's total stride of 32 pixels" in err
    assert "use at least 3x32x32" in err
    assert main(["analyze", "resnet18", "--input-size", "1x32x48"]) == 0  # the least it takes
    assert "resnet18 at 1x32x48" in capsys.readouterr().out


def test_every_documented_tsne_command_keeps_its_own_picture(untrained_run, capsys):
    out = untrained_run / "tsne-pictures"
    base = ["analyze", str(untrained_run), "--samples", "30", "--output", str(out)]
    assert main([*base, "--tsne"]) == 0
    assert main([*base, "--tsne", "penultimate"]) == 0
    assert main([*base, "--tsne", "penultimate", "--split", "val"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "tsne_penultimate_test-30images.png",
        "tsne_penultimate_val-30images.png",
        "tsne_stages.0+penultimate_test-30images.png",
    ]


def test_pictures_of_another_checkpoint_name_it(untrained_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(untrained_run, run, ignore=shutil.ignore_patterns("analysis", "pictures"))
    (run / "checkpoints" / "best.pt").rename(run / "checkpoints" / "last.pt")
    assert main(["analyze", str(run), "--features", "stem.0", "--count", "1"]) == 0
    assert [p.name for p in (run / "analysis").iterdir()] == ["features_stem.0_test-0-last.png"]
