"""``pixelwise predict``: files, folders and globs in; CSV/JSON or masks and overlays out;
bad inputs named one line each while the good ones are still predicted."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

import pixelwise
from pixelwise.card import ModelCard
from pixelwise.checkpoint import save_checkpoint
from pixelwise.cli import main
from pixelwise.config import load_config
from pixelwise.engine.build import build_model

DIGITS = [str(d) for d in range(10)]


def make_checkpoint(path, overrides: list[str], class_names: list[str]):
    cfg = load_config(None, overrides)
    torch.manual_seed(0)
    model = build_model(cfg, len(class_names))
    save_checkpoint(
        {"model": model.state_dict(), "card": ModelCard.from_config(cfg, class_names).to_dict()},
        path,
    )
    return path


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """A grayscale digits classifier (untrained, seeded): 1 channel, 16x16."""
    path = tmp_path_factory.mktemp("cls") / "best.pt"
    overrides = ["data.in_channels=1", "data.image_size=[16, 16]", "model.options={width: 4}"]
    return make_checkpoint(path, overrides, DIGITS)


@pytest.fixture(scope="module")
def segmenter(tmp_path_factory):
    path = tmp_path_factory.mktemp("seg") / "best.pt"
    overrides = [
        "task=segmentation",
        "data.in_channels=3",
        "data.image_size=[32, 32]",
        "model.name=unet",
        "model.options={base_channels: 2}",
    ]
    return make_checkpoint(path, overrides, ["background", "thing", "other"])


def save_image(path, shape, seed: int = 0):
    pixels = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def test_classification_writes_csv_and_json_of_topk(classifier, tmp_path, capsys):
    folder = tmp_path / "images"
    files = [save_image(folder / f"d{i}.png", (8, 8), seed=i) for i in range(3)]
    save_image(tmp_path / "more" / "x.png", (12, 9), seed=9)
    (folder / "notes.txt").write_text("a folder's other files are left alone")
    out = tmp_path / "out"
    code = main(
        [
            "predict",
            str(classifier),
            str(folder),
            str(tmp_path / "more" / "*.png"),
            "--out",
            str(out),
            "--topk",
            "3",
            "--batch-size",
            "2",
        ]
    )
    assert code == 0
    assert "4 image(s) predicted" in capsys.readouterr().out

    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert [r["input"] for r in rows] == [str(f) for f in files] + [
        str(tmp_path / "more" / "x.png")
    ]
    assert list(rows[0]) == [
        "input",
        "label_1",
        "probability_1",
        "label_2",
        "probability_2",
        "label_3",
        "probability_3",
    ]
    expected = pixelwise.load(classifier).predict(files[0], topk=3)
    assert [rows[0][f"label_{k}"] for k in (1, 2, 3)] == expected.labels

    written = json.loads((out / "predictions.json").read_text())
    assert written["task"] == "classification" and written["failed"] == []
    assert [e["label"] for e in written["predictions"][0]["topk"]] == expected.labels


def test_segmentation_writes_masks_and_overlays_at_the_image_size(segmenter, tmp_path):
    image = save_image(tmp_path / "scene.png", (45, 37, 3))
    gray = save_image(tmp_path / "sub" / "scene.png", (20, 24))  # same stem, grayscale
    out = tmp_path / "out"
    assert main(["predict", str(segmenter), str(image), str(gray), "--out", str(out)]) == 0

    mask = np.array(Image.open(out / "masks" / "scene.png"))
    expected = pixelwise.load(segmenter).predict(image)
    assert mask.shape == (45, 37) and np.array_equal(mask, expected.mask)
    overlay = Image.open(out / "overlays" / "scene.png")
    assert overlay.mode == "RGB" and overlay.size == (37, 45)
    assert np.array(Image.open(out / "masks" / "scene-2.png")).shape == (20, 24)
    written = json.loads((out / "predictions.json").read_text())
    assert [p["mask"] for p in written["predictions"]] == ["masks/scene.png", "masks/scene-2.png"]
    assert abs(sum(written["predictions"][0]["class_fractions"].values()) - 1) < 1e-9


def test_sliding_window_flag(segmenter, tmp_path):
    image = save_image(tmp_path / "wide.png", (40, 70, 3))
    out = tmp_path / "out"
    assert main(["predict", str(segmenter), str(image), "--out", str(out), "--sliding-window"]) == 0
    expected = pixelwise.load(segmenter).predict(image, sliding_window=True)
    assert np.array_equal(np.array(Image.open(out / "masks" / "wide.png")), expected.mask)


def test_tta_flag_averages_with_the_mirror_only_when_given(tmp_path):
    """A card that was evaluated with flips (eval.tta_hflip): --tta asks for them."""
    overrides = ["data.in_channels=1", "data.image_size=[16, 16]", "eval.tta_hflip=true"]
    checkpoint = make_checkpoint(tmp_path / "tta.pt", overrides, DIGITS)
    image = save_image(tmp_path / "x.png", (16, 16))

    def probabilities(*flags: str) -> list[float]:
        out = tmp_path / ("out" + "".join(flags))
        args = ["predict", str(checkpoint), str(image), "--out", str(out), "--topk", "10"]
        assert main([*args, "--precision", "float32", *flags]) == 0
        topk = json.loads((out / "predictions.json").read_text())["predictions"][0]["topk"]
        return [entry["probability"] for entry in sorted(topk, key=lambda e: e["index"])]

    predictor = pixelwise.load(checkpoint, precision="float32")
    plain = predictor.predict(image, return_probabilities=True).all_probabilities.tolist()
    flipped = predictor.predict(image, return_probabilities=True, tta=True).all_probabilities
    assert probabilities() == plain
    assert probabilities("--tta") == flipped.tolist()
    assert plain != flipped.tolist()


def test_an_unknown_precision_is_refused_by_the_parser(classifier, tmp_path, capsys):
    image = save_image(tmp_path / "x.png", (8, 8))
    with pytest.raises(SystemExit) as exit:
        main(["predict", str(classifier), str(image), "--precision", "fp8"])
    assert exit.value.code == 2
    assert "invalid choice: 'fp8'" in capsys.readouterr().err


def test_bad_inputs_are_named_and_the_good_ones_still_predicted(classifier, tmp_path, capsys):
    good = save_image(tmp_path / "good.png", (8, 8))
    colour = save_image(tmp_path / "colour.png", (8, 8, 3))
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = tmp_path / "missing.png"
    out = tmp_path / "out"
    inputs = [good, missing, text, colour, empty, tmp_path / "*.gif"]
    code = main(["predict", str(classifier), *map(str, inputs), "--out", str(out)])
    assert code == 1

    captured = capsys.readouterr()
    assert "2 image(s) predicted" in captured.out  # the colour image is converted, as in training
    errors = captured.err.strip().splitlines()
    assert errors[0] == "4 input(s) failed:"
    for bad, words in [
        (missing, "no such file"),
        (text, "not an image"),
        (empty, "folder has no image files"),
        (tmp_path / "*.gif", "no image file matches"),
    ]:
        assert sum(line.strip().startswith(f"{bad}: ") and words in line for line in errors) == 1
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert [r["input"] for r in rows] == [str(good), str(colour)]
    assert len(json.loads((out / "predictions.json").read_text())["failed"]) == 4


def test_a_bad_checkpoint_is_one_line_with_status_2(tmp_path, capsys):
    image = save_image(tmp_path / "a.png", (8, 8))
    assert main(["predict", str(tmp_path / "nope.pt"), str(image), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nope.pt" in err


def test_checkpoint_last_of_a_run_without_one_names_last_pt(classifier, tmp_path, capsys):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "best.pt").write_bytes(classifier.read_bytes())
    image = save_image(tmp_path / "a.png", (16, 16))
    argv = ["predict", str(run), str(image), "--out", str(tmp_path / "out")]
    assert main(argv) == 0
    assert main([*argv, "--checkpoint", "last"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "last.pt" in err


def test_without_out_predictions_go_to_a_new_folder_in_the_current_directory(
    classifier, tmp_path, monkeypatch, capsys
):
    image = save_image(tmp_path / "images" / "d.png", (8, 8))
    monkeypatch.chdir(tmp_path)
    assert main(["predict", str(classifier), str(image)]) == 0
    assert f"1 image(s) predicted -> {tmp_path / 'predictions'}" in capsys.readouterr().out
    first = json.loads((tmp_path / "predictions" / "predictions.json").read_text())
    assert first["predictions"][0]["input"] == str(image)

    assert main(["predict", str(classifier), str(image)]) == 0  # never overwrites the first
    assert f"-> {tmp_path / 'predictions-2'}" in capsys.readouterr().out
    assert (tmp_path / "predictions-2" / "predictions.csv").is_file()
    assert json.loads((tmp_path / "predictions" / "predictions.json").read_text()) == first
    assert not (tmp_path / "images" / "predictions").exists()  # never among the inputs


def test_compile_flag_predicts_through_the_compiled_model(classifier, tmp_path, monkeypatch):
    """--compile reaches the predictor and its forward passes go through what
    compiled_for_inference returns (the real compilation: tests/test_inference.py)."""
    calls = []

    class Counted(torch.nn.Module):  # stands in for torch.compile's module
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, x):
            calls.append(len(x))
            return self.model(x)

    monkeypatch.setattr("pixelwise.inference.compiled_for_inference", Counted)
    image = save_image(tmp_path / "x.png", (16, 16))
    for flags in ([], ["--compile"]):
        out = tmp_path / ("out" + "".join(flags))
        assert main(["predict", str(classifier), str(image), "--out", str(out), *flags]) == 0
        assert calls == ([1] if flags else [])
    plain, fast = (
        json.loads((tmp_path / name / "predictions.json").read_text())["predictions"]
        for name in ("out", "out--compile")
    )
    assert plain == fast
