"""DeepLabV3: ASPP, and equality with torchvision's builders."""

from __future__ import annotations

import pytest
import torch
import torchvision
from segmentation_checks import (
    build_pair,
    build_random,
    check_aux_output,
    check_eval_output,
    check_torchvision_layout,
)
from torch import nn

from pixelwise.models import deeplab
from pixelwise.models.deeplab import ASPP

# ResNet-101 only adds layer3 blocks: its equality is checked on a smaller input.
EVAL_SIZES = {"deeplabv3_resnet50": 65, "deeplabv3_resnet101": 33}
NAMES = list(EVAL_SIZES)


@pytest.fixture(scope="module", params=NAMES)
def pair(request) -> tuple[nn.Module, nn.Module, int]:
    """Ours and torchvision's with aux head and 5 classes (built once per module)."""
    reference_builder = getattr(torchvision.models.segmentation, request.param)
    ours, reference = build_pair(
        getattr(deeplab, request.param), reference_builder, num_classes=5, aux_loss=True
    )
    return ours, reference, EVAL_SIZES[request.param]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("aux_loss", [False, True])
def test_parameter_count_and_keys(name: str, aux_loss: bool) -> None:
    check_torchvision_layout(name, aux_loss)


def test_matches_torchvision(pair) -> None:
    check_eval_output(*pair)


def test_aux_output_matches_torchvision(pair) -> None:
    check_aux_output(*pair[:2])


def test_aspp_branches() -> None:
    aspp = ASPP(32, atrous_rates=(2, 4), out_channels=8)
    assert len(aspp.convs) == 4  # 1x1, two dilated 3x3, image pooling
    assert [branch[0].dilation for branch in aspp.convs[1:3]] == [(2, 2), (4, 4)]
    assert aspp.project[0].in_channels == 4 * 8
    assert aspp.eval()(torch.randn(1, 32, 7, 9)).shape == (1, 8, 7, 9)


def test_forward_backward_odd_size() -> None:
    model = build_random(
        "deeplabv3_resnet50", num_classes=3, in_channels=2, atrous_rates=(2, 4, 6)
    ).train()
    logits = model(torch.randn(2, 2, 17, 23))
    assert isinstance(logits, torch.Tensor) and logits.shape == (2, 3, 17, 23)
    logits.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())
