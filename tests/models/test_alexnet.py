"""AlexNet: torchvision parity, the Classifier interface, fine-tuning from a file."""

from __future__ import annotations

import pytest
import torch
import torchvision
from zoo_checks import (
    assert_matches_reference,
    build_random,
    check_finetune_load,
    check_forward_backward,
    check_pyramid,
    check_reset_classifier,
    cpu_friendly,
    num_params,
)

from pixelwise.models import alexnet, list_models

# Its 3x3/2 pools are unpadded, so each may lose a pixel: map sizes are within two
# pixels of size / stride rather than one.


@pytest.fixture(scope="module", autouse=True)
def _cpu_friendly():
    with cpu_friendly():
        yield


@pytest.fixture(scope="module")
def reference() -> torch.nn.Module:
    return build_random(torchvision.models.alexnet, weights=None)


def test_matches_torchvision(reference: torch.nn.Module) -> None:
    torch.manual_seed(0)
    x = torch.randn(1, 3, 64, 64)
    model = assert_matches_reference(alexnet.alexnet, reference, x)
    published = torchvision.models.AlexNet_Weights.IMAGENET1K_V1.meta["num_params"]
    assert num_params(model) == published
    check_pyramid(model, x, slack=2)


@pytest.mark.parametrize("in_channels", [1, 4])
def test_forward_backward_odd_size(in_channels: int) -> None:
    model = build_random(alexnet.alexnet, num_classes=5, in_channels=in_channels)
    x = torch.randn(2, in_channels, 67, 95)  # 63x63 is the smallest input
    check_pyramid(model, x, slack=2)
    check_forward_backward(model, x, num_classes=5)


def test_reset_classifier() -> None:
    model = build_random(alexnet.alexnet)
    assert model.classifier_module_names() == ["classifier.6"]
    check_reset_classifier(model, torch.randn(2, 3, 64, 64))


@pytest.mark.slow
def test_finetune_from_torchvision_weights(reference: torch.nn.Module, tmp_path) -> None:
    """The head is ``classifier.6``: a dotted name, unlike ResNet's ``fc``."""
    skipped = ["classifier.6.weight", "classifier.6.bias"]
    check_finetune_load("alexnet", reference, tmp_path, skipped)


def test_registered() -> None:
    assert "alexnet" in list_models("classification")
