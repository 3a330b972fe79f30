"""Encoders from classifiers, pad-and-crop, the output convention and the registry."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from torch import nn

import pixelwise.models
from pixelwise.models import ModelError, create_model, list_models
from pixelwise.models.base import (
    Classifier,
    FeatureLevel,
    SegmentationModel,
    crop_to,
    pad_to_multiple,
)
from pixelwise.models.encoders import (
    as_encoder,
    create_encoder,
    load_encoder_weights,
    output_stride,
)
from pixelwise.models.simple import small_cnn

SEGMENTATION = [
    "deeplabv3_resnet101",
    "deeplabv3_resnet50",
    "fcn16s",
    "fcn32s",
    "fcn8s",
    "fcn_resnet101",
    "fcn_resnet50",
    "segnet",
    "segnet_compact",
    "unet",
    "unet_original",
]


def test_registry_lists_segmentation_models() -> None:
    assert set(SEGMENTATION) <= set(list_models(task="segmentation"))
    assert not set(SEGMENTATION) & set(list_models(task="classification"))


def imports_within(package: Path) -> dict[str, set[str]]:
    """Module -> the modules of ``package`` it imports (anywhere in it, functions too);
    ``from . import name`` of a non-module imports the package's ``__init__``."""
    modules = {path.stem for path in package.glob("*.py")}
    graph: dict[str, set[str]] = {}
    for module in modules:
        tree = ast.parse((package / f"{module}.py").read_text())
        deps = set()
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom) or node.level != 1:
                continue
            if node.module:
                deps.add(node.module.split(".")[0])
            else:
                deps |= {a.name if a.name in modules else "__init__" for a in node.names}
        graph[module] = deps & modules
    return graph


def test_models_package_has_no_import_cycle() -> None:
    graph = imports_within(Path(pixelwise.models.__file__).parent)
    assert "registry" in graph and not graph["registry"] - {"base", "weights"}

    def visit(module: str, path: list[str]) -> None:
        assert module not in path, f"import cycle: {' -> '.join([*path, module])}"
        for dep in graph[module]:
            visit(dep, [*path, module])

    for module in graph:
        visit(module, [])


def test_output_stride() -> None:
    assert output_stride(small_cnn()) == 8
    levels = [FeatureLevel("a", 8, 4), FeatureLevel("b", 8, 8), FeatureLevel("c", 8, 8)]
    assert output_stride(levels) == 8  # dilated levels repeat a stride
    assert output_stride([FeatureLevel("a", 8, 4), FeatureLevel("b", 8, 6)]) == 12


def test_pad_and_crop_round_trip() -> None:
    x = torch.randn(2, 3, 97, 131)
    padded = pad_to_multiple(x, 32)
    assert padded.shape[-2:] == (128, 160)
    assert torch.equal(crop_to(padded, (97, 131)), x)
    assert padded[..., 97:, :].abs().sum() == 0 and padded[..., 131:].abs().sum() == 0
    assert pad_to_multiple(x, 1) is x


class ToyClassifier(Classifier):
    """A classifier whose head is nested (``head.1``), like VGG's ``classifier.6``."""

    def __init__(self, num_classes: int = 4, in_channels: int = 3) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_channels, 8, 3, stride=2, padding=1)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(8, 16), nn.Linear(16, num_classes))
        self.feature_info = [FeatureLevel("stem", 8, 2)]

    def forward_pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.stem(x)]

    def classifier_module_names(self) -> list[str]:
        return ["head.2"]


def test_as_encoder_drops_the_whole_top_level_head() -> None:
    encoder = as_encoder(ToyClassifier())
    assert not hasattr(encoder, "head")
    assert encoder.dropped_head == ("head",)
    assert all(key.startswith("stem.") for key in encoder.state_dict())
    assert encoder.forward_pyramid(torch.randn(1, 3, 9, 9))[0].shape == (1, 8, 5, 5)
    with pytest.raises(TypeError, match="Classifier"):
        as_encoder(nn.Conv2d(3, 3, 1))  # type: ignore[arg-type]


def test_create_encoder_from_name_and_instance() -> None:
    encoder = create_encoder("small_cnn", in_channels=1, width=8)
    assert not hasattr(encoder, "fc")
    assert encoder.stem[0].in_channels == 1
    assert create_encoder(small_cnn(width=8)).dropped_head == ("fc",)
    with pytest.raises(ModelError, match="encoder name"):
        create_encoder(small_cnn(), width=8)
    with pytest.raises(ModelError, match="segmentation model"):
        create_encoder("segnet_compact")
    with pytest.raises(ModelError, match="unknown model"):
        create_encoder("resnet_does_not_exist")


def test_encoder_weights_load_a_classifier_state_dict(tmp_path) -> None:
    classifier = small_cnn(num_classes=10, width=8)
    path = tmp_path / "small_cnn.pt"
    torch.save(classifier.state_dict(), path)
    encoder = create_encoder("small_cnn", weights=path, width=8)
    for key, value in encoder.state_dict().items():
        assert torch.equal(value, classifier.state_dict()[key]), key
    model = create_model("unet", num_classes=3, encoder="small_cnn", encoder_weights=path, width=8)
    assert torch.equal(model.encoder.stem[0].weight, classifier.stem[0].weight)
    gray = create_encoder("small_cnn", in_channels=1, weights=path, width=8)
    torch.testing.assert_close(gray.stem[0].weight, classifier.stem[0].weight.sum(1, keepdim=True))
    with pytest.raises(ModelError, match="shapes differ"):
        load_encoder_weights(create_encoder("small_cnn", width=16), path)
    del classifier.stages[2]
    torch.save(classifier.state_dict(), path)
    with pytest.raises(ModelError, match="missing"):
        load_encoder_weights(encoder, path)


class PaddedInput(nn.Module):
    """An encoder that checks it sees the padded input and passes it on as one level."""

    feature_info = [FeatureLevel("identity", 3, 1)]

    def forward_pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        assert x.shape[-2] % 8 == 0 and x.shape[-1] % 8 == 0
        return [x]


class Deepest(nn.Module):
    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        return features[-1]


class Toy(SegmentationModel):
    """Predicts at the padded size, with an auxiliary output."""

    size_divisor = 8

    def __init__(self) -> None:
        super().__init__()
        self.num_classes = 2
        self.encoder = PaddedInput()
        self.decoder = Deepest()
        self.head = nn.Conv2d(3, 2, 1)

    def forward_aux(self, features: list[torch.Tensor]) -> torch.Tensor:
        return 2 * self.head(features[-1])


def test_segmentation_output_convention() -> None:
    model = Toy()
    x = torch.randn(2, 3, 13, 17)
    out = model.train()(x)
    assert set(out) == {"out", "aux"}
    assert out["out"].shape == out["aux"].shape == (2, 2, 13, 17)
    logits = model.eval()(x)
    assert isinstance(logits, torch.Tensor) and logits.shape == (2, 2, 13, 17)
    torch.testing.assert_close(logits, model.head(x))


class Pooled(nn.Module):
    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        return nn.functional.avg_pool2d(features[-1], 4)


def test_coarse_logits_are_resized_to_the_input() -> None:
    """A head at stride 4 gives logits of the input's size: bilinear, then cropped."""
    model = Toy().eval()
    model.decoder = Pooled()
    x = torch.randn(1, 3, 13, 17)
    logits = model(x)
    assert logits.shape == (1, 2, 13, 17)
    coarse = model.head(nn.functional.avg_pool2d(nn.functional.pad(x, (0, 7, 0, 3)), 4))
    expected = nn.functional.interpolate(coarse, size=(16, 24), mode="bilinear")
    torch.testing.assert_close(logits, expected[..., :13, :17])
