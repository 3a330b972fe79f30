"""U-Net: the paper's sizes and parameter count, padded and encoder variants, odd inputs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pixelwise.models import create_model
from pixelwise.models.unet import EncoderUNet, UNet, unet, unet_original, unpadded_unet_size


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def check_forward_backward(model: nn.Module, x: torch.Tensor, size: tuple[int, int]) -> None:
    model.train()
    logits = model(x)
    assert logits.shape == (x.shape[0], model.num_classes, *size)
    logits.square().mean().backward()
    no_grad = [name for name, p in model.named_parameters() if p.grad is None]
    assert not no_grad, f"parameters without gradient: {no_grad[:5]}"


@pytest.mark.parametrize("builder", [unet, unet_original])
def test_parameter_count_matches_paper(builder) -> None:
    with torch.device("meta"):
        model = builder(num_classes=2, in_channels=1)
    assert num_params(model) == pytest.approx(31.0e6, rel=0.02)


def test_unpadded_size_helper() -> None:
    assert unpadded_unet_size(572) == (388, 92)
    assert unpadded_unet_size(188) == (4, 92)  # the smallest valid tile
    assert unpadded_unet_size(60, depth=2) == (20, 20)
    with pytest.raises(ValueError, match="valid sizes near it: 556, 572, 588"):
        unpadded_unet_size(570)
    with pytest.raises(ValueError, match="188"):
        unpadded_unet_size(97)


def test_unpadded_unet_572_gives_388() -> None:
    """One real forward of the paper's tile, narrow (4 base channels) to keep CPU time low."""
    model = unet_original(num_classes=2, in_channels=1, base_channels=4).eval()
    with torch.no_grad():
        logits = model(torch.randn(1, 1, 572, 572))
    assert logits.shape == (1, 2, 388, 388)


def test_unpadded_unet_small_tile_and_bad_size() -> None:
    model = unet_original(num_classes=3, in_channels=2, base_channels=4, depth=2)
    check_forward_backward(model, torch.randn(2, 2, 60, 76), (20, 36))
    with pytest.raises(ValueError, match="not valid"):
        model(torch.randn(1, 2, 61, 76))


@pytest.mark.parametrize("size", [(32, 32), (97, 131), (40, 17)])
def test_padded_unet_keeps_input_size(size) -> None:
    model = create_model("unet", num_classes=3, in_channels=1, base_channels=4)
    assert isinstance(model, UNet) and model.size_divisor == 16
    check_forward_backward(model, torch.randn(2, 1, *size), size)


@pytest.mark.parametrize(
    ("encoder", "options"),
    [
        ("small_cnn", {"width": 8}),  # strides 2, 4, 8: 2 skips, 1 upsampling block
        ("resnet18", {"decoder_channels": (32, 16, 16, 8, 8)}),  # 2 to 32: 4 skips, 1 block
        ("vit_tiny_cifar", {"decoder_channels": (32, 16)}),  # one level at stride 4: 2 blocks
    ],
)
def test_unet_on_zoo_encoders(encoder: str, options: dict) -> None:
    model = create_model("unet", num_classes=4, in_channels=2, encoder=encoder, **options)
    assert isinstance(model, EncoderUNet)
    assert model.size_divisor == max(level.stride for level in model.encoder.feature_info)
    check_forward_backward(model, torch.randn(2, 2, 37, 53), (37, 53))


def test_unet_encoder_structure() -> None:
    model = unet(num_classes=2, encoder="resnet18")
    # resnet18 levels: strides 2, 4, 8, 16, 32 -> four skip blocks and one to full size
    assert len(model.decoder.blocks) == 5 and model.decoder.extra_blocks == 1
    assert model.decoder.blocks[0].convs[0].in_channels == 512 + 256
    assert not any(key.startswith("encoder.fc") for key in model.state_dict())
    with pytest.raises(ValueError, match="decoder_channels"):
        unet(encoder="resnet18", decoder_channels=(16, 16))
    with pytest.raises(ValueError, match="encoder="):
        unet(encoder_weights="weights.pt")
