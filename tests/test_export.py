"""Exports reload and agree with PyTorch: ONNX (ONNX Runtime), safetensors, TorchScript."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open
from torch import nn

import pixelwise
from pixelwise.card import ModelCard
from pixelwise.checkpoint import save_checkpoint
from pixelwise.config import load_config
from pixelwise.engine.build import build_model
from pixelwise.export import ExportError, export
from pixelwise.models import MODELS, ModelSpec

TOLERANCE = 1e-4
DIGITS = [str(d) for d in range(10)]
CANVAS = ["background", *DIGITS]


def make_checkpoint(path, overrides: list[str], class_names: list[str]):
    """An untrained (seeded) model and its card, saved as `pixelwise train` saves them."""
    cfg = load_config(None, overrides)
    torch.manual_seed(0)
    model = build_model(cfg, len(class_names))
    card = {
        **ModelCard.from_config(cfg, class_names).to_dict(),
        "epochs": 0,
        "best_metric": None,
        "best_value": None,
    }
    save_checkpoint({"model": model.state_dict(), "card": card}, path)
    return path


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    path = tmp_path_factory.mktemp("cls") / "checkpoints" / "best.pt"
    overrides = ["data.in_channels=1", "data.image_size=[16, 16]", "model.options={width: 4}"]
    return make_checkpoint(path, overrides, DIGITS)


@pytest.fixture(scope="module")
def segmenter(tmp_path_factory):
    """SegNet's pooling indices and unpooling, two narrow stages: output stride 4."""
    path = tmp_path_factory.mktemp("seg") / "checkpoints" / "best.pt"
    overrides = [
        "task=segmentation",
        "data.in_channels=1",
        "data.image_size=[32, 32]",
        "model.name=segnet_compact",
        "model.options={channels: [4, 8], depths: [1, 1]}",
    ]
    return make_checkpoint(path, overrides, CANVAS)


def pytorch_logits(checkpoint, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return pixelwise.load(checkpoint).model(x).numpy()


# --------------------------------------------------------------------------- ONNX
@pytest.mark.slow
def test_onnx_segmenter_has_dynamic_batch_height_and_width(segmenter):
    import onnxruntime as ort

    result = export(segmenter, "onnx")
    assert result.path == segmenter.with_name("best.onnx") and result.path.is_file()
    assert result.dynamic == ["batch", "height", "width"]
    assert result.max_abs_diff < TOLERANCE
    assert any(shape[2] % 4 for shape, _ in result.checks)  # not a multiple of the stride

    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == ["batch", 1, "height", "width"]
    card = json.loads(session.get_modelmeta().custom_metadata_map["pixelwise_card"])
    assert card["class_names"] == CANVAS and card["model"] == "segnet_compact"
    x = torch.randn(3, 1, 41, 26, generator=torch.Generator().manual_seed(1))
    (logits,) = session.run(None, {"images": x.numpy()})
    assert logits.shape == (3, 11, 41, 26)
    assert np.abs(logits - pytorch_logits(segmenter, x)).max() < TOLERANCE


class PixelMixer(nn.Module):
    """Mixes all pixels with one linear layer, so it only takes its own input size."""

    def __init__(self, num_classes: int = 3, in_channels: int = 1, size: int = 8) -> None:
        super().__init__()
        self.classes = nn.Conv2d(in_channels, num_classes, 1)
        self.mix = nn.Linear(size * size, size * size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        return self.mix(self.classes(x).flatten(2)).view(n, -1, h, w)


@pytest.mark.slow
def test_onnx_falls_back_to_a_fixed_size_where_the_model_needs_one(tmp_path, monkeypatch):
    monkeypatch.setitem(MODELS, "pixel_mixer", ModelSpec(PixelMixer, "segmentation", (1, 8, 8)))
    overrides = [
        "task=segmentation",
        "data.in_channels=1",
        "data.image_size=[8, 8]",
        "model.name=pixel_mixer",
    ]
    checkpoint = make_checkpoint(tmp_path / "mixer.pt", overrides, ["a", "b", "c"])
    result = export(checkpoint, "onnx", out=tmp_path / "exported" / "mixer.onnx")
    assert result.dynamic == ["batch"]
    assert "dynamic batch, height, width" in result.notes[0]
    assert [shape[2:] for shape, _ in result.checks] == [[8, 8]] * 3
    assert result.max_abs_diff < TOLERANCE


# --------------------------------------------------------------------------- safetensors
@pytest.mark.parametrize("which", ["classifier", "segmenter"])
def test_safetensors_reload_with_the_card_and_predict_the_same(which, request, tmp_path):
    checkpoint = request.getfixturevalue(which)
    out = tmp_path / "model.safetensors"
    result = export(checkpoint, "safetensors", out=out)
    assert result.max_abs_diff == 0.0

    with safe_open(str(out), framework="pt") as f:
        card = json.loads(f.metadata()["pixelwise_card"])
    original = pixelwise.load(checkpoint)
    assert card == json.loads(json.dumps(original.card.to_dict()))

    reloaded = pixelwise.load(out)
    images = torch.randint(0, 256, (3, 1, 20, 13), dtype=torch.uint8)
    a = original.predict(images, return_probabilities=True)
    b = reloaded.predict(images, return_probabilities=True)
    for x, y in zip(a, b):
        got = y.all_probabilities if which == "classifier" else y.probabilities
        expected = x.all_probabilities if which == "classifier" else x.probabilities
        assert np.array_equal(got, expected)


# --------------------------------------------------------------------------- TorchScript
@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_torchscript_classifier_reloads_with_its_card(classifier, tmp_path):
    result = export(classifier, "torchscript", out=tmp_path / "model.torchscript.pt")
    assert result.dynamic == ["batch"] and result.max_abs_diff < TOLERANCE
    files = {"pixelwise_card.json": ""}
    module = torch.jit.load(str(result.path), _extra_files=files)
    assert json.loads(files["pixelwise_card.json"])["class_names"] == DIGITS
    x = torch.randn(5, 1, 16, 16)
    assert np.abs(module(x).detach().numpy() - pytorch_logits(classifier, x)).max() < TOLERANCE


def test_torchscript_refuses_what_tracing_cannot_follow(segmenter, tmp_path):
    with pytest.raises(ExportError, match="export to ONNX instead"):
        export(segmenter, "torchscript", out=tmp_path / "seg.torchscript.pt")


def test_export_errors_are_sentences(classifier, tmp_path):
    with pytest.raises(ExportError, match="unknown export format 'tflite'"):
        export(classifier, "tflite")
    with pytest.raises(ExportError, match="overwrite its own checkpoint"):
        export(classifier, "safetensors", out=classifier)
    with pytest.raises(FileNotFoundError):
        export(tmp_path / "missing.pt", "onnx")


@pytest.mark.parametrize("which", ["classifier", "segmenter"])
def test_hf_folder_round_trips_and_loads_like_a_checkpoint(which, request, tmp_path):
    checkpoint = request.getfixturevalue(which)
    result = export(checkpoint, "hf", out=tmp_path / "hf")
    folder = result.path
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    config = json.loads((folder / "config.json").read_text())
    original = pixelwise.load(checkpoint, device="cpu")
    assert config["architecture"] == original.card.model
    assert config["pretrained_cfg"]["input_size"] == [
        original.card.in_channels,
        *original.card.image_size,
    ]
    reloaded = pixelwise.load(folder, device="cpu")
    assert reloaded.card == original.card and result.max_abs_diff == 0.0
    x = torch.rand(2, original.card.in_channels, *original.card.image_size)
    with torch.no_grad():
        assert torch.equal(reloaded.logits(x), original.logits(x))


def test_a_timm_style_folder_of_a_zoo_architecture_loads(tmp_path):
    from safetensors.torch import save_file

    from pixelwise.models import create_model

    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=3)
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()},
        str(tmp_path / "model.safetensors"),
    )
    timm_config = {
        "architecture": "resnet18",
        "num_classes": 3,
        "label_names": ["cat", "dog", "fox"],
        "pretrained_cfg": {"input_size": [3, 64, 64], "mean": [0.5] * 3, "std": [0.25] * 3},
    }
    (tmp_path / "config.json").write_text(json.dumps(timm_config))
    predictor = pixelwise.load(tmp_path, device="cpu")
    assert predictor.class_names == ["cat", "dog", "fox"] and predictor.card.image_size == (64, 64)
    again = create_model("resnet18", num_classes=3, weights=tmp_path)  # model.weights=FOLDER
    assert all(
        torch.equal(a, b) for a, b in zip(again.state_dict().values(), model.state_dict().values())
    )
