"""Helpers shared by the segmentation-model tests (FCN, DeepLab).

Initialising a ResNet-101 (or VGG16's 120M classifier weights) is slow on a shared
CPU, so the tests build models on the meta device and give them seeded random values
with :func:`random_state` instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from pixelwise.models import create_model


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def random_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Seeded values for every state-dict entry: He-normal weights, BN far from identity."""
    gen = torch.Generator().manual_seed(0)
    state = {}
    for key, value in model.state_dict().items():
        shape = tuple(value.shape)
        if not value.dtype.is_floating_point:
            state[key] = torch.zeros(shape, dtype=value.dtype)
        elif key.endswith("running_var") or (len(shape) == 1 and key.endswith("weight")):
            state[key] = torch.empty(shape).uniform_(0.5, 1.5, generator=gen)
        elif len(shape) == 1:
            state[key] = torch.empty(shape).normal_(0.0, 0.1, generator=gen)
        else:
            std = math.sqrt(2.0 / math.prod(shape[1:]))
            state[key] = torch.empty(shape).normal_(0.0, std, generator=gen)
    return state


def build_random(name: str, **options) -> nn.Module:
    """``create_model`` on the meta device, then given :func:`random_state`.

    Skips initialising weights a test never uses (VGG's 120M classifier weights,
    which FCN drops when ``fc_channels`` is not 4096) and slow ResNet-101 inits.
    """
    with torch.device("meta"):
        model = create_model(name, **options)
    model.load_state_dict(random_state(model), strict=True, assign=True)
    return model


def without_dropout(model: nn.Module) -> nn.Module:
    """Training mode (batch statistics, auxiliary head) but deterministic."""
    model.train()
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.eval()
    return model


def build_pair(
    builder: Callable[..., nn.Module], reference_builder: Callable[..., nn.Module], **options
) -> tuple[nn.Module, nn.Module]:
    """Ours and torchvision's model with the same options, sharing random weights.

    Same parameter count and a strict load are asserted here; buffers are cloned so
    that training-mode batch norm updates each model's own statistics.
    """
    with torch.device("meta"):
        ours = builder(**options)
        reference = reference_builder(weights=None, weights_backbone=None, **options)
    assert num_params(ours) == num_params(reference)
    state = random_state(reference)
    reference.load_state_dict(state, assign=True)
    ours.load_state_dict({k: v.clone() for k, v in state.items()}, strict=True, assign=True)
    return ours, reference


def check_torchvision_layout(name: str, aux_loss: bool) -> None:
    """Same parameter count and state-dict keys (in order) as torchvision's builder; with
    the aux head, also torchvision's published count for its COCO weights."""
    import torchvision

    with torch.device("meta"):
        ours = create_model(name, num_classes=21, aux_loss=aux_loss)
        reference = getattr(torchvision.models.segmentation, name)(
            weights=None, weights_backbone=None, num_classes=21, aux_loss=aux_loss
        )
    assert num_params(ours) == num_params(reference)
    assert list(ours.state_dict()) == list(reference.state_dict())
    if aux_loss:
        weights = torchvision.models.get_model_weights(name).COCO_WITH_VOC_LABELS_V1
        assert num_params(ours) == weights.meta["num_params"]


def check_eval_output(ours: nn.Module, reference: nn.Module, size: int) -> None:
    """Eval-mode logits equal torchvision's ``["out"]`` within 1e-5, at the input's size."""
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        logits = ours.eval()(x)
        expected = reference.eval()(x)["out"]
    assert logits.shape == (1, expected.shape[1], size, size)
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=0)


def check_aux_output(ours: nn.Module, reference: nn.Module) -> None:
    """Training-mode ``out`` and ``aux`` equal torchvision's (dropout off)."""
    x = torch.randn(2, 3, 25, 25)
    with torch.no_grad():
        output = without_dropout(ours)(x)
        expected = without_dropout(reference)(x)
    assert set(output) == {"out", "aux"}
    torch.testing.assert_close(output["out"], expected["out"], atol=1e-5, rtol=0)
    torch.testing.assert_close(output["aux"], expected["aux"], atol=1e-5, rtol=0)
