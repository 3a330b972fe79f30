"""ShuffleNetV2: torchvision compatibility, channel shuffle and the Classifier interface."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision
from torch import nn
from zoo_checks import check_forward_backward, check_pyramid

from pixelwise.models import create_model, list_models, shufflenet

NAMES = ["shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0"]


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


@pytest.mark.parametrize("name", NAMES)
def test_matches_torchvision(name: str) -> None:
    torch.manual_seed(0)
    reference = getattr(torchvision.models, name)(weights=None).eval()
    randomize_batchnorm(reference)
    model = getattr(shufflenet, name)().eval()
    assert num_params(model) == num_params(reference)
    model.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), atol=1e-5, rtol=0)


def test_channel_shuffle_interleaves_groups() -> None:
    x = torch.arange(6.0).view(1, 6, 1, 1)
    assert shufflenet.channel_shuffle(x, 2).flatten().tolist() == [0, 3, 1, 4, 2, 5]
    assert shufflenet.channel_shuffle(x, 3).flatten().tolist() == [0, 2, 4, 1, 3, 5]


def test_stride_one_unit_needs_equal_widths() -> None:
    with pytest.raises(ValueError, match="in_channels == out_channels"):
        shufflenet.ShuffleUnit(24, 48, stride=1)


@pytest.mark.parametrize("in_channels", [1, 4])
@pytest.mark.parametrize("name", ["shufflenet_v2_x0_5", "shufflenet_v2_x1_0"])
def test_forward_backward_odd_size(name: str, in_channels: int) -> None:
    model = getattr(shufflenet, name)(num_classes=5, in_channels=in_channels)
    check_forward_backward(model, torch.randn(2, in_channels, 33, 47), num_classes=5)


@pytest.mark.parametrize("name", NAMES)
def test_pyramid_matches_feature_info(name: str) -> None:
    model = getattr(shufflenet, name)()
    assert [level.stride for level in model.feature_info] == [2, 4, 8, 16, 32]
    check_pyramid(model, torch.randn(1, 3, 33, 47), rounding=math.ceil)


def test_head_and_reset_classifier() -> None:
    model = shufflenet.shufflenet_v2_x0_5(num_classes=10).eval()
    x = torch.randn(2, 3, 32, 32)
    assert model.forward_head(model.forward_features(x), pre_logits=True).shape == (2, 1024)
    model.reset_classifier(3)
    assert model(x).shape == (2, 3)
    assert model.num_classes == 3
    assert model.classifier_module_names() == ["fc"]


def test_registered() -> None:
    assert set(NAMES) <= set(list_models("classification"))
    model = create_model("shufflenet_v2_x0_5", num_classes=7, in_channels=1)
    assert model(torch.randn(1, 1, 40, 40)).shape == (1, 7)
    for name in NAMES:
        spec = shufflenet.MODELS[name]
        assert spec.input_size == (3, 224, 224) and spec.description
