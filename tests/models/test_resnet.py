"""ResNet: torchvision parity, dilation, the CIFAR variants and the Classifier interface."""

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

from pixelwise.models import ModelError, create_model, list_models, resnet
from pixelwise.models.weights import load_pretrained

IMAGENET = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]
CIFAR_PAPER_PARAMS = {20: 0.27e6, 32: 0.46e6, 44: 0.66e6, 56: 0.85e6, 110: 1.7e6}


@pytest.fixture(scope="module", autouse=True)
def _cpu_friendly():
    with cpu_friendly():
        yield


def published_params(name: str) -> int:
    """The count torchvision publishes with its ImageNet weights (read offline)."""
    weights = getattr(torchvision.models, f"ResNet{name.removeprefix('resnet')}_Weights")
    return weights.IMAGENET1K_V1.meta["num_params"]


@pytest.mark.parametrize("name", IMAGENET)
def test_matches_torchvision(name: str) -> None:
    torch.manual_seed(0)
    reference = build_random(getattr(torchvision.models, name), weights=None)
    x = torch.randn(1, 3, 32, 32)
    model = assert_matches_reference(getattr(resnet, name), reference, x)
    assert num_params(model) == published_params(name)
    assert [level.stride for level in model.feature_info] == [2, 4, 8, 16, 32]
    check_pyramid(model, x)


@pytest.mark.parametrize(
    ("name", "options", "strides"),
    [
        ("resnet50", {"replace_stride_with_dilation": [False, True, True]}, [2, 4, 8, 8, 8]),
        ("resnet101", {"replace_stride_with_dilation": [False, False, True]}, [2, 4, 8, 16, 16]),
        ("resnet50", {"zero_init_residual": True}, [2, 4, 8, 16, 32]),
        ("resnet50", {"groups": 32, "width_per_group": 4}, [2, 4, 8, 16, 32]),  # ResNeXt-50
        ("resnet18", {"num_classes": 10}, [2, 4, 8, 16, 32]),
    ],
)
def test_matches_torchvision_with_options(name: str, options: dict, strides: list[int]) -> None:
    torch.manual_seed(0)
    reference = build_random(getattr(torchvision.models, name), weights=None, **options)
    x = torch.randn(1, 3, 32, 32)
    model = assert_matches_reference(getattr(resnet, name), reference, x, **options)
    assert [level.stride for level in model.feature_info] == strides
    check_pyramid(model, x)
    check_pyramid(model, torch.randn(1, 3, 33, 47))  # dilated levels stay at 1/8


def test_initialisation() -> None:
    model = resnet.resnet18(zero_init_residual=True)
    assert all(block.bn2.weight.abs().sum() == 0 for block in model.layer1)
    assert torch.equal(model.bn1.weight, torch.ones(64))
    # He normal, fan-out: std = sqrt(2 / (out_channels * 3 * 3)).
    std = model.layer4[0].conv1.weight.std().item()
    assert std == pytest.approx((2 / (512 * 9)) ** 0.5, rel=0.05)
    bottleneck = resnet.ResNet(resnet.Bottleneck, [1, 2, 1, 1], zero_init_residual=True)
    assert bottleneck.layer2[1].bn3.weight.abs().sum() == 0


@pytest.mark.parametrize("shortcut", ["A", "B"])
@pytest.mark.parametrize("depth", sorted(CIFAR_PAPER_PARAMS))
def test_cifar_parameter_counts_match_the_paper(depth: int, shortcut: str) -> None:
    with torch.device("meta"):
        model = getattr(resnet, f"resnet{depth}")(shortcut=shortcut)
    paper = CIFAR_PAPER_PARAMS[depth]
    assert abs(num_params(model) - paper) / paper < 0.02, num_params(model)


def test_option_a_shortcut_pads_with_zeros() -> None:
    a, b = resnet.resnet20(shortcut="A"), resnet.resnet20(shortcut="B")
    assert num_params(b) - num_params(a) == (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)
    x = torch.randn(2, 16, 7, 9)
    y = resnet.PadShortcut(16, 32, stride=2)(x)
    assert y.shape == (2, 32, 4, 5)
    torch.testing.assert_close(y[:, 8:24], x[:, :, ::2, ::2])
    assert y[:, :8].abs().sum() == 0 and y[:, 24:].abs().sum() == 0


@pytest.mark.parametrize("size", [(32, 32), (33, 47)])
@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_cifar_resnet_forward_backward(shortcut: str, size: tuple[int, int]) -> None:
    model = resnet.resnet20(shortcut=shortcut)
    assert [level.stride for level in model.feature_info] == [1, 1, 2, 4]
    x = torch.randn(2, 3, *size)
    check_pyramid(model, x)
    check_forward_backward(model, x, num_classes=10)


def test_cifar_stem_on_imagenet_resnet() -> None:
    model = resnet.resnet18(num_classes=10, cifar_stem=True)
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert [level.stride for level in model.feature_info] == [1, 1, 2, 4, 8]
    x = torch.randn(2, 3, 32, 32)
    check_pyramid(model, x)
    check_forward_backward(model, x, num_classes=10)


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
@pytest.mark.parametrize("in_channels", [1, 4])
def test_forward_backward_odd_size(name: str, in_channels: int) -> None:
    model = build_random(getattr(resnet, name), num_classes=5, in_channels=in_channels)
    x = torch.randn(2, in_channels, 33, 47)
    check_pyramid(model, x)
    check_forward_backward(model, x, num_classes=5)


def test_reset_classifier() -> None:
    model = resnet.resnet18()
    assert model.classifier_module_names() == ["fc"]
    check_reset_classifier(model, torch.randn(2, 3, 32, 32))


def test_finetune_from_torchvision_weights(tmp_path) -> None:
    reference = build_random(torchvision.models.resnet18, weights=None)
    check_finetune_load("resnet18", reference, tmp_path, ["fc.weight", "fc.bias"])
    # The new head is skipped and reported; a first conv for one input channel is
    # adapted (RGB filters summed), not dropped.
    model = resnet.resnet18(num_classes=10, in_channels=1)
    skipped = load_pretrained(model, tmp_path / "resnet18.pth", name="resnet18")
    assert sorted(skipped) == ["fc.bias", "fc.weight"]
    assert torch.allclose(model.conv1.weight, reference.conv1.weight.sum(dim=1, keepdim=True))
    assert torch.equal(model.layer1[0].conv1.weight, reference.layer1[0].conv1.weight)


def test_weights_of_another_architecture_fail(tmp_path) -> None:
    path = tmp_path / "resnet18.pth"
    torch.save(build_random(torchvision.models.resnet18, weights=None).state_dict(), path)
    with pytest.raises(ModelError, match="do not fit model 'resnet20'"):
        create_model("resnet20", weights=path)


def test_bad_options_are_explained() -> None:
    with pytest.raises(ValueError, match="one flag per stage"):
        resnet.resnet50(replace_stride_with_dilation=[False, True])
    with pytest.raises(ValueError, match="6n \\+ 2"):
        resnet.cifar_resnet(21)
    with pytest.raises(ValueError, match="Bottleneck"):
        resnet.resnet18(groups=32)
    with pytest.raises(ValueError, match="shortcut"):
        resnet.resnet20(shortcut="C")


def test_registered() -> None:
    names = list_models("classification")
    for depth in [18, 34, 50, 101, 152, 20, 32, 44, 56, 110]:
        assert f"resnet{depth}" in names
    assert create_model("resnet20").num_classes == 10
    assert create_model("resnet18", num_classes=3, in_channels=1).conv1.in_channels == 1


def test_drop_path_decays_linearly_keeps_the_keys_and_is_the_identity_in_eval() -> None:
    plain = resnet.resnet18(num_classes=4)
    dropped = resnet.resnet18(num_classes=4, drop_path_rate=0.3)
    assert list(dropped.state_dict()) == list(plain.state_dict())  # torchvision's keys
    assert dropped.load_state_dict(plain.state_dict()) is not None
    blocks = [b for name in dropped.stage_names for b in getattr(dropped, name)]
    rates = [getattr(b.drop_path, "p", 0.0) for b in blocks]
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.3)
    assert rates == sorted(rates) and len(set(rates)) == len(rates)
    x = torch.randn(4, 3, 32, 32)
    plain.eval(), dropped.eval()
    assert torch.equal(plain(x), dropped(x))
    plain.train(), dropped.train()
    torch.manual_seed(0)
    assert not torch.allclose(plain(x), dropped(x))


def test_drop_path_rate_is_an_option_of_create_model() -> None:
    model = create_model("resnet20", num_classes=3, drop_path_rate=0.2)
    assert model.block_drop_rates[-1] == pytest.approx(0.2)
    with pytest.raises((ValueError, ModelError), match="drop_path_rate"):
        create_model("resnet20", num_classes=3, drop_path_rate=1.5)
