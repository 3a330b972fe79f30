"""Mixed precision: bf16 autocast, and fp16 with a gradient scaler (runs on CPU too)."""

from __future__ import annotations

import torch
from torch import nn

from pixelwise.engine.precision import Precision


def _step(precision: Precision, model: nn.Module, scale_input: float = 1.0):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    optimizer.zero_grad(set_to_none=True)
    with precision.autocast():
        out = model(torch.ones(2, 4) * scale_input)
        loss = out.float().pow(2).mean()
    precision.backward(loss)
    precision.step(optimizer, model.parameters(), clip_grad_norm=1.0)
    return out


def test_off_and_bf16():
    model = nn.Linear(4, 2)
    assert _step(Precision("off", torch.device("cpu")), model).dtype == torch.float32
    assert _step(Precision("bf16", torch.device("cpu")), model).dtype == torch.bfloat16
    assert Precision("bf16", torch.device("cpu")).state_dict() == {}


def test_fp16_scales_the_loss_and_skips_overflowing_steps():
    precision = Precision("fp16", torch.device("cpu"))
    assert precision.scaler.is_enabled()
    model = nn.Linear(4, 2)
    before = model.weight.detach().clone()
    assert _step(precision, model).dtype == torch.float16
    for _ in range(20):  # the first steps may overflow at the initial scale of 2**16
        if not torch.equal(model.weight, before):
            break
        _step(precision, model)
    assert not torch.equal(model.weight, before)  # a finite step is taken, unscaled
    scale = precision.scaler.get_scale()
    before = model.weight.detach().clone()
    _step(precision, model, scale_input=float("inf"))
    assert torch.equal(model.weight, before)  # overflow: step skipped
    assert precision.scaler.get_scale() < scale  # and the scale shrinks
    again = Precision("fp16", torch.device("cpu"))
    again.load_state_dict(precision.state_dict())
    assert again.scaler.get_scale() == precision.scaler.get_scale()
