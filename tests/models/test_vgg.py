"""VGG: torchvision parity and the Classifier interface.

Loading a torchvision file into a new head (``classifier.6``) is tested in
``test_alexnet.py``, which has the same head at half the file size.
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from zoo_checks import (
    assert_matches_reference,
    build_random,
    check_forward_backward,
    check_pyramid,
    check_reset_classifier,
    cpu_friendly,
    num_params,
)

from pixelwise.models import list_models, vgg

NAMES = ["vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn"]


@pytest.fixture(scope="module", autouse=True)
def _cpu_friendly():
    with cpu_friendly():
        yield


def published_params(name: str) -> int:
    """The count torchvision publishes with its ImageNet weights (read offline)."""
    weights = getattr(torchvision.models, f"VGG{name.removeprefix('vgg').upper()}_Weights")
    return weights.IMAGENET1K_V1.meta["num_params"]


@pytest.mark.parametrize("name", NAMES)
def test_matches_torchvision(name: str) -> None:
    torch.manual_seed(0)
    reference = build_random(getattr(torchvision.models, name), weights=None)
    x = torch.randn(1, 3, 32, 32)  # the smallest input: five 2x2 pools
    model = assert_matches_reference(getattr(vgg, name), reference, x)
    assert num_params(model) == published_params(name)
    assert [level.stride for level in model.feature_info] == [1, 2, 4, 8, 16, 32]
    check_pyramid(model, x)


def test_pool_indices_and_levels() -> None:
    with torch.device("meta"):
        model = vgg.vgg16()
    assert model.pool_indices == [4, 9, 16, 23, 30]  # FCN's pool1 ... pool5
    assert [level.name for level in model.feature_info] == [
        "features.3",
        "features.8",
        "features.15",
        "features.22",
        "features.29",
        "features.30",
    ]
    assert [level.channels for level in model.feature_info] == [64, 128, 256, 512, 512, 512]


@pytest.mark.parametrize("in_channels", [1, 4])
def test_forward_backward_odd_size(in_channels: int) -> None:
    model = build_random(vgg.vgg11_bn, num_classes=5, in_channels=in_channels)
    x = torch.randn(2, in_channels, 33, 47)
    check_pyramid(model, x)
    check_forward_backward(model, x, num_classes=5)


def test_reset_classifier() -> None:
    model = build_random(vgg.vgg11)
    assert model.classifier_module_names() == ["classifier.6"]
    check_reset_classifier(model, torch.randn(2, 3, 32, 32))


def test_dropout_option() -> None:
    with torch.device("meta"):
        model = vgg.vgg11(dropout=0.2)
    assert [m.p for m in model.classifier if isinstance(m, torch.nn.Dropout)] == [0.2, 0.2]


def test_initialisation() -> None:
    """He-normal convs (fan-out), N(0, 0.01) linears, zero biases, as torchvision."""
    torch.manual_seed(0)
    with torch.device("meta"):  # skips nn.Linear's own (slow) initialisation
        model = vgg.vgg11(init_weights=False)
    model.to_empty(device="cpu")
    model._init_weights()
    conv = model.features[-3]  # the last 512 -> 512 conv
    assert conv.weight.std().item() == pytest.approx((2 / (512 * 9)) ** 0.5, rel=0.05)
    assert conv.bias.abs().sum() == 0
    assert model.classifier[0].weight.std().item() == pytest.approx(0.01, rel=0.01)


def test_registered() -> None:
    assert set(NAMES) <= set(list_models("classification"))
