"""DeepLabV3: ASPP, and equality with torchvision's builders."""

from __future__ import annotations

import pytest
import torch
import torchvision
from segmentation_checks import build_pair, build_random, num_params, without_dropout
from torch import nn

from pixelwise.models import create_model, deeplab
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
    with torch.device("meta"):
        ours = create_model(name, num_classes=21, aux_loss=aux_loss)
        reference = getattr(torchvision.models.segmentation, name)(
            weights=None, weights_backbone=None, num_classes=21, aux_loss=aux_loss
        )
    assert num_params(ours) == num_params(reference)
    assert list(ours.state_dict()) == list(reference.state_dict())
    if aux_loss:  # torchvision's published count for its COCO weights
        weights = torchvision.models.get_model_weights(name).COCO_WITH_VOC_LABELS_V1
        assert num_params(ours) == weights.meta["num_params"]


def test_matches_torchvision(pair) -> None:
    ours, reference, size = pair
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        logits = ours.eval()(x)
        expected = reference.eval()(x)["out"]
    assert logits.shape == (1, 5, size, size)
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=0)


def test_aux_output_matches_torchvision(pair) -> None:
    ours, reference, _ = pair
    x = torch.randn(2, 3, 25, 25)
    with torch.no_grad():
        output = without_dropout(ours)(x)
        expected = without_dropout(reference)(x)
    assert set(output) == {"out", "aux"}
    torch.testing.assert_close(output["out"], expected["out"], atol=1e-5, rtol=0)
    torch.testing.assert_close(output["aux"], expected["aux"], atol=1e-5, rtol=0)


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
