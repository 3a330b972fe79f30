"""Receptive fields and cumulative strides: hand-derived values, VGG16's known ones."""

from __future__ import annotations

import torch
from torch import nn

from pixelwise.analysis import output_size, receptive_fields
from pixelwise.models import create_model


def test_small_stack_by_hand():
    # r_out = r_in + (k - 1)·d·j_in, j_out = j_in·s, from r = j = 1:
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),  # r = 1 + 2·1·1 = 3,  j = 1
        nn.Conv2d(4, 4, 3, stride=2, padding=1),  # r = 3 + 2·1·1 = 5,  j = 2
        nn.MaxPool2d(2),  # r = 5 + 1·1·2 = 7,  j = 4
        nn.Conv2d(4, 4, 3, padding=2, dilation=2),  # r = 7 + 2·2·4 = 23, j = 4
        nn.Conv2d(4, 4, (1, 5), padding=(0, 2)),  # width only: 23 + 4·4 = 39
    )
    fields = receptive_fields(model, (1, 32, 32))
    sizes = {name: (f.size, f.jump) for name, f in fields.items()}
    assert sizes["0"] == ((3, 3), (1, 1))
    assert sizes["1"] == ((5, 5), (2, 2))
    assert sizes["2"] == ((7, 7), (4, 4))
    assert sizes["3"] == ((23, 23), (4, 4))
    assert sizes["4"] == ((23, 39), (4, 4))
    assert fields["4"].describe_size() == "23x39"


def test_vgg16_conv5_3_and_last_pool():
    with torch.device("meta"):
        model = create_model("vgg16")
    fields = receptive_fields(model, (3, 224, 224))
    assert fields["features.28"].size == (196, 196)  # conv5_3
    assert fields["features.28"].jump == (16, 16)
    assert fields["features.30"].size == (212, 212)  # the last max-pool
    assert fields["features.30"].jump == (32, 32)
    assert fields["classifier.0"] is None  # flattened features: no spatial field


class Residual(nn.Module):
    """Two 3x3 convs on the main path, a strided 1x1 shortcut, and a squeeze-excitation gate."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 2, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(2, 2, 3, padding=1)
        self.shortcut = nn.Conv2d(2, 2, 1, stride=2)
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Sigmoid())
        self.after = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.conv1(x))
        y = y * self.gate(y)
        return self.after(y + self.shortcut(x))


def test_residual_sum_follows_the_main_path_and_gates_are_ignored():
    fields = receptive_fields(Residual(), (2, 16, 16))
    assert fields["conv1"].size == (3, 3)
    assert fields["conv2"].size == (3 + 2 * 2, 3 + 2 * 2)  # 7, jump 2
    assert fields["shortcut"].size == (1, 1)
    assert fields["after"].size == (7, 7)  # max of the summed branches, not the gate's global field
    assert fields["after"].jump == (2, 2)


def test_upsampling_divides_the_jump():
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3, stride=2, padding=1),  # r 3, j 2
        nn.ConvTranspose2d(2, 2, 2, stride=2),  # sees ceil(2/2) = 1 input pixel: r 3, j 1
        nn.MaxPool2d(2),  # r 3 + 1·1 = 4, j 2
        nn.Upsample(scale_factor=2),  # j 1
    )
    fields = receptive_fields(model, (1, 16, 16))
    assert (fields["1"].size, fields["1"].jump) == ((3, 3), (1, 1))
    assert (fields["2"].size, fields["2"].jump) == ((4, 4), (2, 2))
    assert fields["3"].jump == (1, 1)


def test_output_size_formula_matches_pytorch():
    for size, kernel, stride, padding, dilation in [
        (224, 7, 2, 3, 1),
        (14, 3, 1, 1, 1),
        (15, 3, 2, 0, 2),
    ]:
        conv = nn.Conv2d(1, 1, kernel, stride, padding, dilation)
        actual = conv(torch.zeros(1, 1, size, size)).shape[-1]
        assert output_size(size, kernel, stride, padding, dilation) == actual
