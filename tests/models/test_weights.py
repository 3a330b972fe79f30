"""Loading weights: a new head is fine, a new input-channel count is adapted, anything else fails."""

from __future__ import annotations

import pytest
import torch

from pixelwise.models import ModelError, create_model
from pixelwise.models.weights import adapt_input_channels


@pytest.fixture
def resnet20_weights(tmp_path):
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=10)
    path = tmp_path / "resnet20.pt"
    torch.save(model.state_dict(), path)
    return model, path


def test_new_class_count_replaces_only_the_head(resnet20_weights):
    source, path = resnet20_weights
    model = create_model("resnet20", num_classes=3, weights=path)
    assert model.fc.out_features == 3
    for key, value in source.state_dict().items():
        if not key.startswith("fc."):
            assert torch.equal(model.state_dict()[key], value), key


def test_grayscale_input_sums_the_rgb_filters(resnet20_weights):
    source, path = resnet20_weights
    model = create_model("resnet20", num_classes=10, in_channels=1, weights=path)
    first = source.conv1.weight
    assert torch.allclose(model.conv1.weight, first.sum(dim=1, keepdim=True))


def test_adapted_filters_keep_the_response_to_a_gray_image():
    """A gray image (all channels equal) gives the same response with 1 or 2x the channels."""
    weight = torch.randn(8, 3, 3, 3)
    gray = torch.randn(1, 1, 9, 9)
    expected = torch.nn.functional.conv2d(gray.expand(1, 3, 9, 9), weight)
    for channels in (1, 6):
        adapted = adapt_input_channels(weight, channels)
        response = torch.nn.functional.conv2d(gray.expand(1, channels, 9, 9), adapted)
        assert torch.allclose(response, expected, atol=1e-4)
    assert adapt_input_channels(weight, 4).shape == (8, 4, 3, 3)


def test_weights_of_another_width_fail_naming_the_key(tmp_path):
    torch.save(create_model("resnet32").state_dict(), tmp_path / "r32.pt")
    with pytest.raises(ModelError, match="missing keys|unexpected keys"):
        create_model("resnet20", weights=tmp_path / "r32.pt")
    torch.save(
        create_model("cifar_fastnet", widths=(8, 16, 16)).state_dict(), tmp_path / "narrow.pt"
    )
    with pytest.raises(ModelError, match=r"layers\.0\.0\.weight is \(8, 24, 3, 3\) in the weights"):
        create_model("cifar_fastnet", weights=tmp_path / "narrow.pt")


def test_new_classifier_restarts_a_head_of_the_same_size(resnet20_weights):
    source, path = resnet20_weights
    kept = create_model("resnet20", num_classes=10, weights=path)
    fresh = create_model("resnet20", num_classes=10, weights=path, new_classifier=True)
    assert torch.equal(kept.fc.weight, source.fc.weight)
    assert not torch.equal(fresh.fc.weight, source.fc.weight)
    assert torch.equal(fresh.conv1.weight, source.conv1.weight)
