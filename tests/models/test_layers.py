"""Shared building blocks: torchvision-compatible keys and sizes."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.ops import Conv2dNormActivation

from pixelwise.models.layers import ConvNormAct, same_padding


def test_conv_norm_act_matches_torchvision_layout() -> None:
    ours = ConvNormAct(3, 8, 3, stride=2, act_layer=nn.Hardswish)
    theirs = Conv2dNormActivation(3, 8, 3, stride=2, activation_layer=nn.Hardswish)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, 3, 9, 11)
    torch.testing.assert_close(ours.eval()(x), theirs.eval()(x))
    assert ours(x).shape == (2, 8, 5, 6)  # ceil(size / stride)


def test_bias_only_without_norm() -> None:
    assert ConvNormAct(3, 8).get_submodule("0").bias is None
    plain = ConvNormAct(3, 8, 1, norm_layer=None, act_layer=None)
    assert len(plain) == 1 and plain[0].bias is not None


def test_dilation_keeps_the_size() -> None:
    assert same_padding(3, dilation=4) == 4
    x = torch.randn(1, 4, 13, 17)
    assert ConvNormAct(4, 4, 3, dilation=4).eval()(x).shape == x.shape


def test_activation_without_inplace() -> None:
    block = ConvNormAct(3, 8, act_layer=nn.GELU, inplace=None)
    assert isinstance(block[2], nn.GELU)
