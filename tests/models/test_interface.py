"""The interface every model of ``list_models()`` shares (timm's idea: one test for all).

Classifiers: ``forward_features``, ``forward_head``, ``reset_classifier``,
``feature_info``, and ``pretrained_modules()`` + ``classifier_module_names()``, which
together cover every parameter exactly once. Segmentation models: encoder → decoder →
head, logits of the input's size at odd sizes, and ``pretrained_modules()``.

Models are built on the meta device (no weight initialisation) where nothing runs, and
given seeded random weights (``build_random``) where something does.
"""

from __future__ import annotations

import pytest
import torch
from segmentation_checks import build_random
from torch import nn

from pixelwise.models import Classifier, FeatureLevel, create_model, list_models
from pixelwise.models.base import SegmentationModel
from pixelwise.models.unet import unpadded_unet_size

CLASSIFIERS = list_models("classification")
SEGMENTERS = list_models("segmentation")
ODD = (37, 53)

# Narrower options where a family has them: shapes do not depend on the width.
SMALL = {
    "unet": {"base_channels": 8},
    "unet_original": {"base_channels": 4},
    "fcn32s": {"fc_channels": 32},
    "fcn16s": {"fc_channels": 32},
    "fcn8s": {"fc_channels": 32},
}

# What pretrained weights fill, per segmentation model (default options).
PRETRAINED = {
    "unet": [],
    "unet_original": [],
    "segnet": ["encoder"],
    "segnet_compact": ["encoder"],
    "fcn32s": ["encoder", "decoder"],  # fc6/fc7 are VGG16's classifier layers
    "fcn16s": ["encoder", "decoder"],
    "fcn8s": ["encoder", "decoder"],
    "fcn_resnet50": ["backbone"],  # torchvision's names, for state-dict parity
    "fcn_resnet101": ["backbone"],
    "deeplabv3_resnet50": ["backbone"],
    "deeplabv3_resnet101": ["backbone"],
}


def under(name: str, modules: list[str]) -> bool:
    return any(name == m or name.startswith(m + ".") for m in modules)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classifier_interface(name: str) -> None:
    with torch.device("meta"):
        model = create_model(name, num_classes=3)
    assert isinstance(model, Classifier)
    for method in ("forward_features", "forward_head", "forward_pyramid", "reset_classifier"):
        assert callable(getattr(model, method)), method
    assert model.feature_info and all(isinstance(lv, FeatureLevel) for lv in model.feature_info)
    strides = [level.stride for level in model.feature_info]
    assert strides == sorted(strides)
    head, pretrained = model.classifier_module_names(), model.pretrained_modules()
    for parameter, _ in model.named_parameters():  # pretrained or head, never both
        assert under(parameter, pretrained) != under(parameter, head), parameter
    model.reset_classifier(5)
    assert model.num_classes == 5


def test_set_of_segmentation_models() -> None:
    assert set(PRETRAINED) == set(SEGMENTERS)


@pytest.mark.parametrize("name", SEGMENTERS)
def test_segmentation_declares_its_parts(name: str) -> None:
    with torch.device("meta"):
        model = create_model(name, num_classes=3)
    assert isinstance(model, SegmentationModel)
    for part in ("encoder", "decoder", "head"):
        assert isinstance(getattr(model, part), nn.Module), part
    assert model.encoder.feature_info and callable(model.encoder.forward_pyramid)
    assert model.pretrained_modules() == PRETRAINED[name]
    children = {child for child, _ in model.named_children()}
    assert set(model.pretrained_modules()) <= children
    assert set(model.classifier_module_names()) <= children | {"aux_classifier"}


def expected_size(name: str, size: tuple[int, int]) -> tuple[int, int]:
    if name == "unet_original":  # unpadded: logits for the centre of the input
        return unpadded_unet_size(size[0])[0], unpadded_unet_size(size[1])[0]
    return size


# The ResNet-101 models only add layer3 blocks to the ResNet-50 ones.
BIG = {"fcn_resnet101", "deeplabv3_resnet101"}


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in BIG else n for n in SEGMENTERS]
)
def test_segmentation_odd_input_gives_input_sized_logits(name: str) -> None:
    size = (188, 204) if name == "unet_original" else ODD  # its smallest valid sizes
    model = build_random(name, num_classes=3, in_channels=2, **SMALL.get(name, {})).eval()
    with torch.no_grad():
        logits = model(torch.randn(1, 2, *size))
    assert isinstance(logits, torch.Tensor)
    assert logits.shape == (1, 3, *expected_size(name, size))


# A few encoders of each kind run fast; the sweep over the whole zoo is `slow`.
QUICK_ENCODERS = ["small_cnn", "resnet18", "mobilenet_v3_small", "vit_tiny_cifar", "alexnet"]


@pytest.mark.parametrize(
    "encoder",
    [e if e in QUICK_ENCODERS else pytest.param(e, marks=pytest.mark.slow) for e in CLASSIFIERS],
)
def test_unet_on_every_zoo_encoder(encoder: str) -> None:
    model = build_random("unet", num_classes=3, encoder=encoder).eval()
    assert model.pretrained_modules() == ["encoder"]
    assert not hasattr(model.encoder, model.encoder.dropped_head[0])
    with torch.no_grad():
        logits = model(torch.randn(1, 3, *ODD))
    assert logits.shape == (1, 3, *ODD)


# Top-level names of checkpoints saved before the encoder -> decoder -> head shape.
OLD_NAMES = {
    "unet": ({"base_channels": 4}, {"down": "encoder.stages", "up": "decoder.stages"}),
    "unet_on_encoder": ({"encoder": "small_cnn", "width": 4}, {"blocks": "decoder.blocks"}),
    "fcn8s": ({"fc_channels": 8}, {"fc6": "decoder.fc6", "score_pool3": "head.score_pool3"}),
}


@pytest.mark.parametrize("case", list(OLD_NAMES))
def test_checkpoints_of_the_earlier_layout_still_load(case: str) -> None:
    options, moved = OLD_NAMES[case]
    name = "unet" if case == "unet_on_encoder" else case
    state = build_random(name, num_classes=3, **options).state_dict()
    old_state = {}
    for key, value in state.items():
        for old, new in moved.items():
            if key.startswith(new + "."):
                key = old + key[len(new) :]
        old_state[key] = value
    assert set(old_state) != set(state)
    with torch.device("meta"):
        model = create_model(name, num_classes=3, **options)
    model.load_state_dict(old_state, strict=True, assign=True)
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key
