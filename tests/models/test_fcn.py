"""FCN: VGG16 FCN-32s/16s/8s as in the paper, and FCN-ResNet equal to torchvision's."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision
from segmentation_checks import (
    build_pair,
    build_random,
    check_aux_output,
    check_eval_output,
    check_torchvision_layout,
    num_params,
)
from torch import nn

from pixelwise.models import create_model, fcn
from pixelwise.models.fcn import bilinear_upsampling, linear_as_conv

# ResNet-101 only adds layer3 blocks: its equality is checked on a smaller input.
EVAL_SIZES = {"fcn_resnet50": 65, "fcn_resnet101": 33}


@pytest.fixture(scope="module", params=list(EVAL_SIZES))
def pair(request) -> tuple[nn.Module, nn.Module, int]:
    """Ours and torchvision's with aux head and 5 classes (built once per module)."""
    reference_builder = getattr(torchvision.models.segmentation, request.param)
    ours, reference = build_pair(
        getattr(fcn, request.param), reference_builder, num_classes=5, aux_loss=True
    )
    return ours, reference, EVAL_SIZES[request.param]


@pytest.mark.parametrize("name", ["fcn_resnet50", "fcn_resnet101"])
@pytest.mark.parametrize("aux_loss", [False, True])
def test_resnet_parameter_count(name: str, aux_loss: bool) -> None:
    check_torchvision_layout(name, aux_loss)


def test_resnet_matches_torchvision(pair) -> None:
    check_eval_output(*pair)


def test_resnet_aux_output_matches_torchvision(pair) -> None:
    check_aux_output(*pair[:2])


def test_resnet_forward_backward_odd_size() -> None:
    model = build_random("fcn_resnet50", num_classes=3, in_channels=1, aux_loss=True).train()
    output = model(torch.randn(2, 1, 17, 23))
    assert output["out"].shape == output["aux"].shape == (2, 3, 17, 23)
    (output["out"].square().mean() + output["aux"].square().mean()).backward()
    assert all(p.grad is not None for p in model.parameters())
    assert model.eval()(torch.randn(1, 1, 17, 23)).shape == (1, 3, 17, 23)


def test_vgg_parameter_counts() -> None:
    """The paper's table 1 gives 134M parameters for FCN-VGG16 (21 classes)."""
    with torch.device("meta"):
        models = {
            name: create_model(name, num_classes=21) for name in ("fcn32s", "fcn16s", "fcn8s")
        }
    counts = {name: num_params(model) for name, model in models.items()}
    upscore = num_params(models["fcn32s"].head.upscore)  # fixed in the paper's code, learned here
    assert counts["fcn32s"] - upscore == pytest.approx(134e6, rel=0.01)

    def upsampling(factor: int) -> int:  # 21 -> 21 channels, kernel 2 * factor, no bias
        return 21 * 21 * (2 * factor) ** 2

    def skip(channels: int) -> int:  # a 1x1 scorer and the 2x upsampling before the sum
        return channels * 21 + 21 + upsampling(2)

    assert counts["fcn16s"] - counts["fcn32s"] == skip(512) + upsampling(16) - upsampling(32)
    assert counts["fcn8s"] - counts["fcn16s"] == skip(256) + upsampling(8) - upsampling(16)
    assert not any("classifier" in key for key in models["fcn8s"].state_dict())


@pytest.mark.parametrize("factor", [2, 8, 32])
def test_upsampling_starts_bilinear(factor: int) -> None:
    up = bilinear_upsampling(3, factor)
    x = torch.randn(1, 3, 5, 6)
    with torch.no_grad():
        y = up(x)
    assert y.shape == (1, 3, 5 * factor, 6 * factor)
    expected = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
    m = factor // 2  # the border, where zero padding replaces clamping
    torch.testing.assert_close(y[..., m:-m, m:-m], expected[..., m:-m, m:-m])


def test_fully_connected_layer_as_convolution() -> None:
    linear = nn.Linear(4 * 3 * 3, 6)
    conv = linear_as_conv(linear, 4, 3)
    assert conv.weight.data_ptr() == linear.weight.data_ptr()  # shared, not copied
    x = torch.randn(2, 4, 3, 3)
    torch.testing.assert_close(conv(x)[..., 1, 1], linear(x.flatten(1)))


def test_fcn32s_full_size_forward() -> None:
    """One real build: fc6/fc7 are VGG16's classifier layers, the scorer starts at zero."""
    model = fcn.fcn32s(num_classes=4).eval()
    assert model.decoder.fc6[0].weight.shape == (4096, 512, 7, 7)
    with torch.no_grad():
        logits = model(torch.randn(1, 3, 33, 47))
    assert logits.shape == (1, 4, 33, 47)
    assert logits.abs().max() == 0


@pytest.mark.parametrize(
    ("name", "size"), [("fcn32s", (33, 47)), ("fcn16s", (40, 32)), ("fcn8s", (21, 45))]
)
def test_vgg_forward_backward_odd_sizes(name: str, size: tuple[int, int]) -> None:
    model = build_random(name, num_classes=3, in_channels=1, fc_channels=32).train()
    logits = model(torch.randn(1, 1, *size))
    assert logits.shape == (1, 3, *size)
    logits.square().mean().backward()
    assert all(p.grad is not None and p.grad.any() for p in model.parameters())
