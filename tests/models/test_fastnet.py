from __future__ import annotations

import torch

from pixelwise.models import create_model


def test_forward_backward_and_pyramid():
    model = create_model("cifar_fastnet", num_classes=10)
    x = torch.randn(4, 3, 32, 32)
    out = model(x)
    assert out.shape == (4, 10)
    out.sum().backward()
    pyramid = model.forward_pyramid(x)
    for level, feature in zip(model.feature_info, pyramid):
        assert feature.shape[1] == level.channels
        assert feature.shape[-1] == 32 // level.stride


def test_odd_sizes_and_channels():
    model = create_model("cifar_fastnet", num_classes=3, in_channels=1, widths=(8, 16, 16))
    assert model(torch.randn(2, 1, 37, 45)).shape == (2, 3)


def test_whitening_decorrelates_patches_and_freezes():
    torch.manual_seed(0)
    model = create_model("cifar_fastnet", widths=(8, 16, 16))
    mixing = torch.tensor([[1.0, 0.9, 0.8], [0.0, 0.5, 0.1], [0.0, 0.0, 0.2]])
    images = torch.einsum("dc,nchw->ndhw", mixing, torch.randn(64, 3, 16, 16))
    model.initialize_from_data(images)
    assert not model.whiten.weight.requires_grad
    half = model.whiten.weight.shape[0] // 2
    responses = torch.nn.functional.conv2d(images, model.whiten.weight[:half])
    flat = responses.permute(1, 0, 2, 3).reshape(half, -1)
    covariance = torch.cov(flat)
    assert torch.allclose(covariance, torch.eye(half), atol=0.05)


def test_batchnorm_scale_is_not_trained():
    model = create_model("cifar_fastnet", widths=(8, 16, 16))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert not any(
        n.endswith(".weight") and "layers" in n and p.ndim == 1
        for n, p in model.named_parameters()
        if n in trainable
    )
