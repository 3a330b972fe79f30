"""Per-model metadata: data that matches fresh counts, torchvision's own figures, the CLI."""

from __future__ import annotations

import pytest
import torchvision

from pixelwise.analysis.metadata import compute_meta
from pixelwise.cli import main
from pixelwise.models import MODELS, create_model, list_models
from pixelwise.models.metadata import model_meta
from pixelwise.models.registry import has_torchvision_weights

QUICK = ["small_cnn", "resnet18", "resnet20", "mobilenet_v3_small", "segnet_compact", "unet"]


def test_every_model_has_metadata():
    for name in MODELS:
        meta = model_meta(name)
        assert meta.params > 0 and meta.macs > 0 and len(meta.input_size) == 3, name
        assert (meta.pretrained is not None) == has_torchvision_weights(name), name


@pytest.mark.parametrize("name", QUICK)
def test_the_data_equals_a_fresh_count(name):
    assert compute_meta(name) == _as_json(model_meta(name))


@pytest.mark.slow
def test_the_whole_table_is_current():
    stale = [name for name in MODELS if compute_meta(name) != _as_json(model_meta(name))]
    assert not stale, f"run `python -m pixelwise.analysis.metadata`: stale entries {stale}"


def _as_json(meta) -> dict:
    import json

    from pixelwise.models.metadata import _table

    return json.loads(json.dumps(_table()[meta.name]))  # as written, to compare entries


def test_parameter_counts_equal_torchvision_s_own_figures():
    """torchvision's weights state their parameter count: ours must agree (same layout)."""
    for name in list_models(pretrained=True, task="classification"):
        weights = torchvision.models.get_model_weights(name).DEFAULT
        ours = model_meta(name).params
        if name == "googlenet":  # torchvision counts it without its two auxiliary heads
            heads = create_model(name).aux1, create_model(name).aux2
            ours -= sum(p.numel() for head in heads for p in head.parameters())
        assert ours == weights.meta["num_params"], name


def test_pretrained_preprocessing_is_torchvision_s():
    meta = model_meta("resnet18")
    assert meta.pretrained.mean == (0.485, 0.456, 0.406) and meta.pretrained.crop_size == 224
    assert meta.pretrained.interpolation == "bilinear"
    assert meta.pretrained.metrics["ImageNet-1K/acc@1"] == pytest.approx(69.758)
    assert model_meta("resnet20").pretrained is None


def test_the_cli_prints_the_metadata(capsys):
    assert main(["models", "resnet18"]) == 0
    out = capsys.readouterr().out
    assert "11,689,512" in out and "acc@1" in out and "resize 256, crop 224" in out
    assert main(["models", "resnet*", "--pretrained"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()[1:]
    assert [line.split()[0] for line in lines] == list_models("resnet*", pretrained=True)
    assert all(line.rstrip().endswith("torchvision") for line in lines)


def test_timm_spellings_of_create_model():
    import torch

    pyramid = create_model("resnet18", features_only=True, in_chans=1)
    maps = pyramid(torch.zeros(1, 1, 64, 64))
    assert [m.shape[1] for m in maps] == pyramid.channels() == [64, 64, 128, 256, 512]
    assert [64 // m.shape[-1] for m in maps] == pyramid.reduction() == [2, 4, 8, 16, 32]
    assert not any("fc." in key for key in pyramid.state_dict())  # the head is gone
    from pixelwise.models import ModelError

    with pytest.raises(ModelError, match="not a classifier"):
        create_model("unet", features_only=True)
    with pytest.raises(ModelError, match="not both"):
        create_model("resnet18", pretrained=True, weights="x.pt")
