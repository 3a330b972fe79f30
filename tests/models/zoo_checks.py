"""Checks shared by the classifier-zoo tests (ResNet, VGG, AlexNet, GoogLeNet).

Initialising big models is slow on a shared CPU (VGG's first linear layer alone has
103M weights), so the torchvision-parity tests build both models on the meta device
and give them the same random tensors from :func:`random_state`, which draws each
(key, shape) once per session. Our own initialisation is exercised by separate,
smaller tests.
"""

from __future__ import annotations

import contextlib
import math
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import nn

from pixelwise.models import create_model

_DRAWN: dict[tuple[str, tuple[int, ...]], torch.Tensor] = {}
_POOL_SIZE = 1 << 20


@contextlib.contextmanager
def cpu_friendly() -> Iterator[None]:
    """For a test module: one thread (tiny inputs run faster on one thread than on two
    busy, shared cores), and the drawn tensors freed at the end."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        _DRAWN.clear()


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _draw(key: str, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """Values for one state-dict entry, seeded by its name so the order of tests is irrelevant.

    Conv/linear weights are He-normal, ``std = sqrt(2 / fan_in)``; batch-norm affine
    terms are far from their defaults, so eval-mode batch norm is really exercised
    (the parity tests then calibrate its running statistics, see
    :func:`calibrate_batchnorm`).
    """
    if not dtype.is_floating_point:
        return torch.zeros(shape, dtype=dtype)  # num_batches_tracked
    gen = torch.Generator().manual_seed(zlib.crc32(key.encode()))
    if key.endswith("running_var") or (len(shape) == 1 and key.endswith("weight")):
        return torch.empty(shape).uniform_(0.5, 1.5, generator=gen)
    if len(shape) == 1:  # biases, BN running_mean
        return torch.empty(shape).normal_(0.0, 0.1, generator=gen)
    fan_in = math.prod(shape[1:])
    numel = math.prod(shape)
    pool = torch.empty(min(numel, _POOL_SIZE)).normal_(0.0, math.sqrt(2.0 / fan_in), generator=gen)
    # Tiling a 1M-value pool fills VGG's 103M-weight layer several times faster.
    return pool.repeat(math.ceil(numel / pool.numel()))[:numel].view(shape)


def random_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Random tensors for every entry of ``model``'s state dict (the model may be on meta).

    Parameters are shared between calls (tests never step an optimizer); buffers are
    copied, since training-mode batch norm updates them in place.
    """
    parameters = {name for name, _ in model.named_parameters()}
    state = {}
    for key, value in model.state_dict().items():
        cache_key = (key, tuple(value.shape))
        if cache_key not in _DRAWN:
            _DRAWN[cache_key] = _draw(key, tuple(value.shape), value.dtype)
        tensor = _DRAWN[cache_key]
        state[key] = tensor if key in parameters else tensor.clone()
    return state


def build_random(builder: Callable[..., nn.Module], **options) -> nn.Module:
    """``builder(**options)`` built on the meta device, then given :func:`random_state`."""
    with torch.device("meta"):
        model = builder(**options)
    model.load_state_dict(random_state(model), strict=True, assign=True)
    return model


def calibrate_batchnorm(model: nn.Module, x: torch.Tensor) -> None:
    """Running statistics from one training-mode batch (momentum 1).

    With random weights and made-up statistics, eval-mode activations grow block after
    block (ResNet-152's logits reach 1e11); calibrated, they stay of order one, so an
    absolute tolerance on the logits means what it says.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in norms:
        m.momentum = 1.0
    model.train()
    with torch.no_grad():
        model(x)
    for m in norms:
        m.momentum = 0.1


def assert_matches_reference(
    builder: Callable[..., nn.Module], reference: nn.Module, x: torch.Tensor, **options
) -> nn.Module:
    """Same parameter count, strict load of ``reference``'s state dict, same eval logits."""
    calibrate_batchnorm(reference, torch.randn(2, *x.shape[1:]))
    with torch.device("meta"):
        model = builder(**options)
    assert num_params(model) == num_params(reference)
    model.load_state_dict(reference.state_dict(), strict=True, assign=True)
    model.eval()
    reference.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), atol=1e-5, rtol=0)
    return model


def check_pyramid(
    model: nn.Module,
    x: torch.Tensor,
    slack: float = 0.999,
    rounding: Callable[[float], int] | None = None,
) -> None:
    """``forward_pyramid`` gives one map per ``feature_info`` level, of its channels and
    about ``size / stride`` pixels (``slack`` 0.999 allows floor or ceil); with
    ``rounding`` (e.g. ``math.ceil``) exactly ``rounding(size / stride)`` pixels."""
    model.eval()
    with torch.no_grad():
        maps = model.forward_pyramid(x)
        last = model.forward_features(x)
    assert len(maps) == len(model.feature_info)
    strides = [level.stride for level in model.feature_info]
    assert strides == sorted(strides), "levels go shallow to deep"
    for fmap, level in zip(maps, model.feature_info):
        assert fmap.shape[:2] == (x.shape[0], level.channels), level
        for size, full in zip(fmap.shape[2:], x.shape[2:]):
            assert abs(size - full / level.stride) <= slack, (level, tuple(fmap.shape))
            if rounding is not None:
                assert size == rounding(full / level.stride), (level, tuple(fmap.shape))
        assert isinstance(model.get_submodule(level.name), nn.Module)
    torch.testing.assert_close(maps[-1], last)


def check_forward_backward(model: nn.Module, x: torch.Tensor, num_classes: int) -> None:
    """Training-mode forward (aux heads included) and backward reach every parameter."""
    model.train()
    output = model(x)
    outputs = [output["out"], *output["aux"]] if isinstance(output, dict) else [output]
    for logits in outputs:
        assert logits.shape == (x.shape[0], num_classes)
    sum(logits.square().mean() for logits in outputs).backward()
    no_grad = [name for name, p in model.named_parameters() if p.grad is None]
    assert not no_grad, f"parameters without gradient: {no_grad[:5]}"


def check_reset_classifier(model: nn.Module, x: torch.Tensor, num_classes: int = 7) -> None:
    model.reset_classifier(num_classes)
    model.eval()
    with torch.no_grad():
        assert model(x).shape == (x.shape[0], num_classes)
        pre_logits = model.forward_head(model.forward_features(x), pre_logits=True)
    assert pre_logits.shape == (x.shape[0], model.num_features)
    assert model.num_classes == num_classes
    for name in model.classifier_module_names():
        model.get_submodule(name)  # the names point at real modules


def check_finetune_load(
    name: str, reference: nn.Module, tmp_path: Path, expected_skipped: list[str], **options
) -> nn.Module:
    """``create_model(name, num_classes=10, weights=file)`` from a torchvision state dict:
    a new classifier (exactly the ``expected_skipped`` tensors), every other one equal."""
    path = tmp_path / f"{name}.pth"
    torch.save(reference.state_dict(), path)
    model = create_model(name, num_classes=10, weights=path, **options)
    assert model.num_classes == 10
    own = model.state_dict()
    replaced = []
    for key, value in reference.state_dict().items():
        if own[key].shape != value.shape:
            replaced.append(key)
            assert own[key].shape[0] == 10, key
        else:
            assert torch.equal(own[key], value), key
    assert sorted(replaced) == sorted(expected_skipped)
    return model
