"""The bundled CamVid data block reads the dataset's own test split (test.txt with
test/ and testannot/) where the copy has it, and says in one line where it does not."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixelwise.cli import main
from pixelwise.config import load_config
from pixelwise.data import build_datasets

SPLITS = {"train": 4, "val": 2, "test": 3}


def camvid_copy(root: Path, splits: dict[str, int] = SPLITS) -> Path:
    """SegNet's CamVid layout: <split>/ and <split>annot/ index PNGs (0..11, 11 =
    Unlabelled) listed in <split>.txt under the /SegNet/CamVid/ prefix."""
    rng = np.random.default_rng(0)
    for split, count in splits.items():
        lines = []
        for i in range(count):
            name = f"0001TP_{split}{i:03d}.png"
            for folder, array in (
                (split, rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)),
                (f"{split}annot", rng.integers(0, 12, (24, 32), dtype=np.uint8)),
            ):
                (root / folder).mkdir(parents=True, exist_ok=True)
                Image.fromarray(array).save(root / folder / name)
            lines.append(f"/SegNet/CamVid/{split}/{name} /SegNet/CamVid/{split}annot/{name}")
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


def camvid_config(root: Path, name: str = "data_camvid", *extra: str):
    return load_config(
        name, [f"data.root={root}", "data.image_size=[32, 32]", "data.cache=false", *extra]
    )


def test_the_test_list_is_the_test_split(tmp_path, caplog):
    root = camvid_copy(tmp_path / "camvid")
    with caplog.at_level(logging.INFO, logger="pixelwise"):
        splits = build_datasets(camvid_config(root))
    assert {name: len(ds) for name, ds in splits.datasets.items()} == SPLITS
    assert not [r for r in caplog.records if "test.txt" in r.getMessage()]


def test_without_a_test_list_one_info_line_says_so(tmp_path, caplog):
    root = camvid_copy(tmp_path / "camvid", {"train": 4, "val": 2})
    with caplog.at_level(logging.INFO, logger="pixelwise"):
        splits = build_datasets(camvid_config(root))
    assert list(splits.datasets) == ["train", "val"]
    notes = [r for r in caplog.records if "test.txt" in r.getMessage()]
    assert len(notes) == 1 and notes[0].levelno == logging.INFO
    assert str(root / "test.txt") in notes[0].getMessage()
    assert "no 'test' split" in notes[0].getMessage()


def test_a_carved_test_split_needs_no_note(tmp_path, caplog):
    root = camvid_copy(tmp_path / "camvid", {"train": 8, "val": 2})
    with caplog.at_level(logging.INFO, logger="pixelwise"):
        splits = build_datasets(camvid_config(root, "data_camvid", "data.test_fraction=0.25"))
    assert len(splits.datasets["test"]) == 2
    assert not [r for r in caplog.records if "test.txt" in r.getMessage()]


@pytest.mark.slow
def test_recipe_evaluates_the_test_split_and_eval_reads_it(tmp_path, monkeypatch, capsys):
    root = camvid_copy(tmp_path / "camvid")
    monkeypatch.chdir(tmp_path)
    quick = [
        f"data.root={root}",
        "data.image_size=[32, 32]",
        "data.cache=false",
        "data.num_workers=0",
        "train.epochs=1",
        "train.amp=off",
        "train.channels_last=false",
        "train.tensorboard=false",
        "train.report=false",
        "train.learning_gif=false",
    ]
    assert main(["train", "camvid_unet", *quick, "--run-dir", "run"]) == 0
    # training ends on the test split (not, with a warning, on val)
    assert json.loads((tmp_path / "run/eval/test.json").read_text())["split"] == "test"
    assert main(["eval", "run", "--split", "test", "--checkpoint", "last"]) == 0

    (root / "test.txt").unlink()  # a copy without the test split
    capsys.readouterr()
    assert main(["eval", "run", "--split", "test", "--checkpoint", "last"]) == 2
    error = capsys.readouterr().err
    assert "split 'test' is not in this dataset (it has: train, val)" in error
