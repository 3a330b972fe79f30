"""Vision Transformer: torchvision compatibility, input sizes and the Classifier interface."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models.vision_transformer import VisionTransformer as TorchvisionViT
from torchvision.models.vision_transformer import interpolate_embeddings

from pixelwise.models import create_model, list_models, vit


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small inputs gain nothing from intra-op threads, and on a shared CPU those threads spin."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small_pair(image_size: int = 32, **options) -> tuple[nn.Module, nn.Module]:
    """A 2-block, width-48 ViT from torchvision and ours with its weights (random head)."""
    torch.manual_seed(0)
    reference = TorchvisionViT(image_size, 4, 2, 3, 48, 96, num_classes=10, **options).eval()
    nn.init.normal_(reference.heads.head.weight, std=0.1)  # torchvision starts it at zero
    model = vit.VisionTransformer(image_size, 4, 2, 3, 48, 96, num_classes=10, **options).eval()
    model.load_state_dict(reference.state_dict(), strict=True)
    return reference, model


@pytest.fixture(scope="module")
def vit_b_16_pair() -> tuple[nn.Module, nn.Module]:
    """torchvision's ViT-B/16 and ours, both at image_size 64 (16 patches) to stay cheap."""
    torch.manual_seed(0)
    reference = torchvision.models.vit_b_16(weights=None, image_size=64).eval()
    nn.init.normal_(reference.heads.head.weight, std=0.02)
    model = vit.vit_b_16(image_size=64).eval()
    return reference, model


def test_vit_b_16_matches_torchvision(vit_b_16_pair) -> None:
    reference, model = vit_b_16_pair
    assert num_params(model) == num_params(reference)
    model.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), atol=1e-5, rtol=0)


@pytest.mark.slow
def test_vit_b_16_default_size_and_parameter_count() -> None:
    """At 224 the count is torchvision's published one; a 48 x 48 input interpolates."""
    model = vit.vit_b_16().eval()
    assert num_params(model) == torchvision.models.ViT_B_16_Weights.IMAGENET1K_V1.meta["num_params"]
    with torch.no_grad():
        assert model(torch.randn(1, 3, 48, 48)).shape == (1, 1000)


def test_small_config_matches_torchvision_with_representation_layer() -> None:
    reference, model = small_pair(representation_size=24)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), atol=1e-5, rtol=0)
        assert model.forward_head(model.forward_features(x), pre_logits=True).shape == (2, 24)


def test_position_embeddings_interpolate_like_torchvision() -> None:
    """Ours at 32 run on 48 x 48 equals torchvision rebuilt at 48 with interpolated weights."""
    reference, model = small_pair(image_size=32)
    resized = TorchvisionViT(48, 4, 2, 3, 48, 96, num_classes=10).eval()
    resized.load_state_dict(interpolate_embeddings(48, 4, reference.state_dict()))
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(model(x), resized(x), atol=1e-5, rtol=0)


def test_non_multiple_of_patch_size_is_padded() -> None:
    _, model = small_pair()
    x = torch.randn(1, 3, 30, 29)
    padded = nn.functional.pad(x, (0, 3, 0, 2))  # to 32 x 32 with zeros, right and bottom
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(padded))


def test_image_size_must_be_a_multiple_of_the_patch() -> None:
    with pytest.raises(ValueError, match="multiple of patch_size"):
        vit.VisionTransformer(30, 4, 1, 1, 8, 8)


@pytest.mark.parametrize("size", [(32, 32), (33, 47), (1, 1)])
@pytest.mark.parametrize("in_channels", [1, 3, 4])
def test_tiny_forward_backward(in_channels: int, size: tuple[int, int]) -> None:
    model = vit.vit_tiny_cifar(
        num_classes=10, in_channels=in_channels, dropout=0.1, attention_dropout=0.1
    )
    model.reset_classifier(10)  # zero head: give the backward something to flow through
    nn.init.normal_(model.heads.head.weight, std=0.02)
    logits = model(torch.randn(2, in_channels, *size))
    assert logits.shape == (2, 10)
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_tiny_parameter_count_is_as_documented() -> None:
    assert num_params(vit.vit_tiny_cifar()) == 2_693_578  # 10 classes
    assert num_params(vit.vit_tiny_cifar(num_classes=100)) == 2_693_578 + 90 * 193
    dim = 192
    block = vit.EncoderBlock(dim, 3, 4 * dim, 0.0, 0.0)
    assert num_params(block) == 12 * dim**2 + 13 * dim


@pytest.mark.parametrize("size", [(32, 32), (33, 47)])
def test_pyramid_is_one_level_at_patch_stride(size: tuple[int, int]) -> None:
    model = vit.vit_tiny_cifar().eval()
    (level,) = model.feature_info
    assert (level.channels, level.stride) == (192, 4)
    with torch.no_grad():
        (fmap,) = model.forward_pyramid(torch.randn(2, 3, *size))
    assert fmap.shape == (2, 192, math.ceil(size[0] / 4), math.ceil(size[1] / 4))


def test_head_and_reset_classifier() -> None:
    model = vit.vit_tiny_cifar().eval()
    x = torch.randn(2, 3, 32, 32)
    tokens = model.forward_features(x)
    assert tokens.shape == (2, 1 + 64, 192)
    assert model.forward_head(tokens, pre_logits=True).shape == (2, 192)
    model.reset_classifier(3)
    assert model(x).shape == (2, 3)
    assert model.num_classes == 3
    assert model.classifier_module_names() == ["heads"]


def test_registered() -> None:
    assert {"vit_b_16", "vit_tiny_cifar"} <= set(list_models("classification"))
    assert vit.MODELS["vit_tiny_cifar"].input_size == (3, 32, 32)
    assert vit.MODELS["vit_b_16"].input_size == (3, 224, 224)
    model = create_model("vit_tiny_cifar", num_classes=7, in_channels=1)
    assert model(torch.randn(1, 1, 32, 32)).shape == (1, 7)


def test_drop_path_drops_residual_branches_in_training_only() -> None:
    plain = vit.vit_tiny_cifar(num_classes=4)
    dropped = create_model("vit_tiny_cifar", num_classes=4, drop_path_rate=0.5)
    assert list(dropped.state_dict()) == list(plain.state_dict())
    dropped.load_state_dict(plain.state_dict())
    rates = [getattr(b.drop_path, "p", 0.0) for b in dropped.encoder.layers]
    assert rates == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4, 0.5])
    x = torch.randn(4, 3, 32, 32)
    nn.init.normal_(plain.heads.head.weight)  # a zero head would hide every difference
    dropped.load_state_dict(plain.state_dict())
    plain.eval(), dropped.eval()
    assert torch.equal(plain(x), dropped(x))
    plain.train(), dropped.train()
    torch.manual_seed(0)
    assert not torch.allclose(plain(x), dropped(x))
