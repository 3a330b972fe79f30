"""ModelCard: from a config, to plain data and back, older cards, building the model."""

from __future__ import annotations

import json

import pytest
import torch

from pixelwise.card import CardError, ModelCard, Preprocessing
from pixelwise.config import load_config


def digits_config(*overrides: str):
    return load_config("digits", ["model.options={width: 4, dropout: 0.0}", *overrides])


def test_a_card_round_trips_through_plain_data_and_json():
    card = ModelCard.from_config(digits_config(), [str(d) for d in range(10)])
    plain = card.to_dict()
    assert json.loads(json.dumps(plain)) == plain  # lists, strings and numbers only
    assert ModelCard.from_dict(plain) == card
    assert plain["num_classes"] == 10 and plain["card_version"] == 2


def test_the_preprocessing_is_what_evaluation_does():
    cfg = digits_config("data.image_size=[16, 16]", "eval.tta_hflip=true")
    prep = ModelCard.from_config(cfg, list("ab")).preprocessing
    assert prep.resize == (16, 16) and prep.tta_hflip and prep.normalize
    assert len(prep.mean) == cfg.data.in_channels
    seg = load_config(
        None,
        [
            "task=segmentation",
            "data.format=digits_segmentation",
            "data.crop_size=[24, 24]",
            "eval.sliding_window=true",
            "model.name=unet",
        ],
    )
    prep = ModelCard.from_config(seg, list("abc")).preprocessing
    assert prep.resize is None and prep.sliding_window and prep.window_size == (24, 24)


def test_a_card_written_before_version_2_still_reads():
    old = {
        "pixelwise_version": "0.1.0",
        "task": "classification",
        "model": "small_cnn",
        "model_options": {"width": 4},
        "num_classes": 3,
        "class_names": ["a", "b", "c"],
        "in_channels": 1,
        "image_size": [16, 16],
        "normalize": True,
        "mean": [0.5],
        "std": [0.5],
        "eval_preprocessing": {"resize": [16, 16], "tta_hflip": True, "mean": [0.5]},
        "epochs": 3,
    }
    card = ModelCard.from_dict(old)
    assert card.options == {"width": 4} and card.version == "0.1.0"
    assert card.preprocessing.tta_hflip and card.preprocessing.std == (0.5,)
    assert card.epochs == 3 and card.num_classes == 3


def test_build_gives_the_architecture_and_check_fits_names_the_difference():
    card = ModelCard.from_config(digits_config(), [str(d) for d in range(10)])
    model = card.build()
    assert model(torch.zeros(2, 1, 16, 16)).shape == (2, 10)
    card.check_fits("best.pt", "small_cnn", 10, 1)
    with pytest.raises(CardError, match="best.pt was trained for 10 classes, but this run has 4"):
        card.check_fits("best.pt", "small_cnn", 4, 1)
    with pytest.raises(CardError, match="predicts 10 classes, the student 4"):
        card.check_fits("t.pt", "small_cnn", 4, 1, role="the student")


def test_no_card_is_one_line():
    with pytest.raises(CardError, match="no model card"):
        ModelCard.from_dict(None, "x.pt")
    assert Preprocessing(resize=None).window_size is None
