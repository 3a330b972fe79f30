"""Mixed precision: bf16 autocast, and fp16 with a gradient scaler (runs on CPU too)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pixelwise import runtime
from pixelwise.engine import precision as precision_module
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


def test_auto_is_bf16_only_where_the_device_has_it_natively(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(precision_module, "fast_bfloat16", lambda device: False)
    assert Precision("auto", cpu).amp == "off"
    assert _step(Precision("auto", cpu), nn.Linear(4, 2)).dtype == torch.float32
    monkeypatch.setattr(precision_module, "fast_bfloat16", lambda device: True)
    assert Precision("auto", cpu).amp == "bf16"


def test_bf16_on_a_cpu_without_native_bfloat16_is_kept_with_one_warning(monkeypatch, caplog):
    monkeypatch.setattr(precision_module, "fast_bfloat16", lambda device: False)
    monkeypatch.setattr(precision_module, "_warned", set())
    for _ in range(3):
        assert Precision("bf16", torch.device("cpu")).amp == "bf16"
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [
        "train.amp=bf16: this CPU has no native bfloat16 (no AVX-512 BF16 or AMX), so "
        "bfloat16 runs emulated, many times slower than float32; set train.amp=auto (or off)"
    ]


@pytest.mark.parametrize(
    ("flags", "native"),
    [({"avx2", "avx512f", "avx512_bf16"}, True), ({"amx_bf16", "avx2"}, True), ({"avx2"}, False)],
)
def test_the_cpu_probe_reads_the_instruction_flags(monkeypatch, flags, native):
    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset(flags))
    assert runtime.fast_bfloat16(torch.device("cpu")) is native
    assert runtime.fast_bfloat16(torch.device("meta")) is False
