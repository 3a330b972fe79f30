"""GoogLeNet: torchvision parity, auxiliary heads, the Classifier interface."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn
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

from pixelwise.models import googlenet, list_models

AUX_HEADS = ["aux1.fc2.weight", "aux1.fc2.bias", "aux2.fc2.weight", "aux2.fc2.bias"]


@pytest.fixture(scope="module", autouse=True)
def _cpu_friendly():
    with cpu_friendly():
        yield


def torchvision_googlenet(**options) -> nn.Module:
    return build_random(torchvision.models.googlenet, weights=None, init_weights=True, **options)


@pytest.mark.parametrize("transform_input", [False, True])
@pytest.mark.parametrize("aux_logits", [True, False])
def test_matches_torchvision(aux_logits: bool, transform_input: bool) -> None:
    torch.manual_seed(0)
    options = {"aux_logits": aux_logits, "transform_input": transform_input}
    reference = torchvision_googlenet(**options)
    x = torch.randn(1, 3, 64, 64)
    model = assert_matches_reference(googlenet.googlenet, reference, x, **options)
    published = torchvision.models.GoogLeNet_Weights.IMAGENET1K_V1.meta["num_params"]
    if not aux_logits:
        assert num_params(model) == published
    assert [level.stride for level in model.feature_info] == [2, 4, 8, 16, 32]
    check_pyramid(model, x)


def test_batch_norm_eps_is_torchvisions() -> None:
    with torch.device("meta"):
        model = googlenet.googlenet()
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(m.eps == 0.001 for m in norms)


def test_aux_heads_only_in_training() -> None:
    model = build_random(googlenet.googlenet, num_classes=5)
    x = torch.randn(2, 3, 64, 64)
    output = model.train()(x)
    assert set(output) == {"out", "aux"} and len(output["aux"]) == 2
    assert all(aux.shape == (2, 5) for aux in output["aux"])
    assert model.eval()(x).shape == (2, 5)
    without = build_random(googlenet.googlenet, num_classes=5, aux_logits=False)
    assert without.train()(x).shape == (2, 5)
    assert without.classifier_module_names() == ["fc"]


@pytest.mark.parametrize("in_channels", [1, 4])
def test_forward_backward_odd_size(in_channels: int) -> None:
    model = build_random(googlenet.googlenet, num_classes=5, in_channels=in_channels)
    x = torch.randn(2, in_channels, 33, 47)
    check_pyramid(model, x)
    check_forward_backward(model, x, num_classes=5)  # aux heads included


def test_reset_classifier_replaces_aux_heads_too() -> None:
    model = build_random(googlenet.googlenet)
    assert model.classifier_module_names() == ["fc", "aux1", "aux2"]
    check_reset_classifier(model, torch.randn(2, 3, 64, 64))
    assert model.aux1.fc2.out_features == model.aux2.fc2.out_features == 7


def test_transform_input_needs_rgb() -> None:
    with pytest.raises(ValueError, match="in_channels=3"):
        googlenet.googlenet(in_channels=4, transform_input=True)


def test_initialisation() -> None:
    """Truncated normal, std 0.01, for convs and linears, as torchvision."""
    torch.manual_seed(0)
    model = googlenet.googlenet(aux_logits=False)
    weight = model.inception5b.branch2[1].conv.weight
    assert weight.std().item() == pytest.approx(0.01, rel=0.05)
    assert model.fc.bias.abs().max() < 1 / 1024**0.5  # PyTorch's default bias init


def test_finetune_from_torchvision_weights(tmp_path) -> None:
    """A file with aux heads (``weights=None``): every head is replaced."""
    reference = torchvision_googlenet(aux_logits=True)
    check_finetune_load("googlenet", reference, tmp_path, ["fc.weight", "fc.bias", *AUX_HEADS])


def test_finetune_from_weights_without_aux_heads(tmp_path) -> None:
    """torchvision's ImageNet model drops its (untrained) aux heads; ours start fresh."""
    reference = torchvision_googlenet(aux_logits=False)
    model = check_finetune_load("googlenet", reference, tmp_path, ["fc.weight", "fc.bias"])
    assert model.aux1 is not None


def test_registered() -> None:
    assert "googlenet" in list_models("classification")
