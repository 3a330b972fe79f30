"""MobileNetV2/V3: torchvision compatibility and the Classifier interface."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision
from torch import nn
from zoo_checks import check_forward_backward, check_pyramid

from pixelwise.models import create_model, list_models, mobilenet

NAMES = ["mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large"]


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small inputs gain nothing from intra-op threads, and on a shared CPU those threads spin."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def randomize_batchnorm(model: nn.Module) -> None:
    """Non-trivial running statistics and affine terms, so eval mode exercises them."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.running_mean, std=0.1)
            nn.init.uniform_(m.running_var, 0.5, 1.5)
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.normal_(m.bias, std=0.1)


@pytest.mark.parametrize("width_mult", [1.0, 0.5])
@pytest.mark.parametrize("name", NAMES)
def test_matches_torchvision(name: str, width_mult: float) -> None:
    torch.manual_seed(0)
    reference = getattr(torchvision.models, name)(weights=None, width_mult=width_mult).eval()
    randomize_batchnorm(reference)
    model = getattr(mobilenet, name)(width_mult=width_mult).eval()
    assert num_params(model) == num_params(reference)
    model.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), atol=1e-5, rtol=0)


def test_parameter_counts_match_torchvision_metadata() -> None:
    """The counts torchvision publishes with its ImageNet weights (read offline)."""
    expected = {
        "mobilenet_v2": torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1,
        "mobilenet_v3_small": torchvision.models.MobileNet_V3_Small_Weights.IMAGENET1K_V1,
        "mobilenet_v3_large": torchvision.models.MobileNet_V3_Large_Weights.IMAGENET1K_V1,
    }
    for name, weights in expected.items():
        assert num_params(getattr(mobilenet, name)()) == weights.meta["num_params"], name


@pytest.mark.parametrize("in_channels", [1, 4])
@pytest.mark.parametrize("name", NAMES)
def test_forward_backward_odd_size(name: str, in_channels: int) -> None:
    model = getattr(mobilenet, name)(num_classes=5, in_channels=in_channels)
    check_forward_backward(model, torch.randn(2, in_channels, 33, 47), num_classes=5)


@pytest.mark.parametrize("name", NAMES)
def test_pyramid_matches_feature_info(name: str) -> None:
    model = getattr(mobilenet, name)()
    assert [level.stride for level in model.feature_info] == [2, 4, 8, 16, 32]
    check_pyramid(model, torch.randn(1, 3, 33, 47), rounding=math.ceil)


@pytest.mark.parametrize("name", NAMES)
def test_head_and_reset_classifier(name: str) -> None:
    model = getattr(mobilenet, name)(num_classes=10).eval()
    x = torch.randn(2, 3, 32, 32)
    features = model.forward_features(x)
    assert model.forward_head(features, pre_logits=True).shape == (2, model.num_features)
    model.reset_classifier(3)
    assert model(x).shape == (2, 3)
    assert model.num_classes == 3
    assert model.classifier_module_names() == ["classifier"]


def test_dropout_option_reaches_the_head() -> None:
    assert mobilenet.mobilenet_v2(dropout=0.5).classifier[0].p == 0.5
    assert mobilenet.mobilenet_v3_small(dropout=0.3).classifier[2].p == 0.3


def test_make_divisible_keeps_ninety_percent() -> None:
    assert mobilenet.make_divisible(32 * 0.5) == 16
    assert mobilenet.make_divisible(10) == 16  # 8 would lose more than 10%
    assert mobilenet.make_divisible(3) == 8  # never below the divisor


def test_registered() -> None:
    assert set(NAMES) <= set(list_models("classification"))
    model = create_model("mobilenet_v3_small", num_classes=7, in_channels=1, width_mult=0.75)
    assert model(torch.randn(1, 1, 40, 40)).shape == (1, 7)
    for name in NAMES:
        spec = mobilenet.MODELS[name]
        assert spec.input_size == (3, 224, 224) and spec.description
