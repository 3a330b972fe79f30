"""SegNet: the paper's size, VGG16-BN-compatible encoder, index-driven unpooling, odd inputs."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from pixelwise.models import create_model
from pixelwise.models.encoders import load_encoder_weights
from pixelwise.models.segnet import SegNet, segnet, segnet_compact


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_parameter_count_matches_paper() -> None:
    with torch.device("meta"):
        model = segnet(num_classes=11)
    assert num_params(model) == pytest.approx(29.4e6, rel=0.02)
    assert num_params(model.encoder) == pytest.approx(14.7e6, rel=0.01)


def test_encoder_has_vgg16_bn_layout() -> None:
    with torch.device("meta"):
        model = segnet()
        reference = torchvision.models.vgg16_bn()
    expected = {k: v.shape for k, v in reference.state_dict().items() if k.startswith("features.")}
    assert {k: v.shape for k, v in model.encoder.state_dict().items()} == expected


def test_encoder_weights_skip_the_classifier(tmp_path) -> None:
    source = segnet_compact()
    state = {**source.encoder.state_dict(), "classifier.0.weight": torch.zeros(3, 3)}
    path = tmp_path / "vgg_like.pt"
    torch.save(state, path)
    model = segnet_compact()
    load_encoder_weights(model.encoder, path)
    assert torch.equal(model.encoder.features[0].weight, source.encoder.features[0].weight)


def test_unpooling_puts_values_back_at_the_maxima() -> None:
    """With an identity convolution, decoding keeps each 2x2 window's maximum, in place."""
    model = SegNet(num_classes=1, in_channels=1, channels=(1,), depths=(1,)).eval()
    conv = model.encoder.features[0]
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    with torch.no_grad():
        conv.weight[0, 0, 1, 1] = 1.0
        x = torch.rand(1, 1, 4, 6)
        unpooled = model.decoder(model.encoder.forward_pyramid(x))  # depth 1: unpooling alone
    is_max = x == nn.functional.interpolate(nn.functional.max_pool2d(x, 2), scale_factor=2)
    assert torch.equal(unpooled != 0, is_max)
    torch.testing.assert_close(unpooled[is_max], x[is_max] / (1 + 1e-5) ** 0.5)  # eval BN


@pytest.mark.parametrize("size", [(32, 32), (97, 131), (21, 40)])
def test_compact_forward_backward_keeps_size(size) -> None:
    model = create_model("segnet_compact", num_classes=5, in_channels=1, input_norm=True)
    assert isinstance(model.input_norm, nn.BatchNorm2d) and model.size_divisor == 16
    x = torch.randn(2, 1, *size)
    logits = model.train()(x)
    assert logits.shape == (2, 5, *size)
    logits.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_full_segnet_odd_input() -> None:
    model = segnet(num_classes=3, in_channels=4).eval()
    assert isinstance(model.input_norm, nn.Identity) and model.size_divisor == 32
    with torch.no_grad():
        assert model(torch.randn(1, 4, 37, 45)).shape == (1, 3, 37, 45)
