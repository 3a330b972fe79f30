"""Mixed precision and the optimiser step around it.

``train.amp``: ``off`` (float32), ``bf16`` (bfloat16 autocast: float32's range, no
scaling needed; runs on CPU and recent GPUs) or ``fp16`` (float16 autocast with a
``GradScaler``: the loss is multiplied before ``backward`` so small gradients do not
flush to zero, the gradients are unscaled before clipping, and a step whose gradients
overflowed is skipped while the scale shrinks) or ``auto``: ``bf16`` where the device
computes bfloat16 natively (a recent GPU; a CPU with AVX-512 BF16 or AMX), else ``off``.
``bf16`` asked for on a CPU without native bfloat16 is kept, with a warning: there it
is many times slower than float32.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from ..log import logger
from ..runtime import fast_bfloat16

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


_warned: set[str] = set()


def resolve_amp(amp: str, device: torch.device) -> str:
    """``train.amp`` for ``device``: ``auto`` becomes ``bf16`` or ``off``; a slow ``bf16``
    is warned about once per process."""
    if amp == "auto":
        return "bf16" if fast_bfloat16(device) else "off"
    if amp == "bf16" and device.type == "cpu" and not fast_bfloat16(device) and not _warned:
        _warned.add(amp)
        logger.warning(
            "train.amp=bf16: this CPU has no native bfloat16 (no AVX-512 BF16 or AMX), so "
            "bfloat16 runs emulated, many times slower than float32; set train.amp=auto "
            "(or off)"
        )
    return amp


class Precision:
    """Autocast context, scaled backward and the (unscaled, clipped) optimiser step."""

    def __init__(self, amp: str, device: torch.device) -> None:
        amp = resolve_amp(amp, device)
        self.amp = amp
        self.device_type = device.type
        self.dtype = DTYPES.get(amp)
        self.scaler = torch.amp.GradScaler(device.type, enabled=amp == "fp16")

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        self.scaler.scale(loss).backward()

    def step(
        self,
        optimizer: torch.optim.Optimizer,
        parameters: Iterable[nn.Parameter],
        clip_grad_norm: float | None,
    ) -> None:
        """Unscale, clip to ``clip_grad_norm`` (L2 over all gradients), step, update."""
        if clip_grad_norm:
            self.scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(parameters, clip_grad_norm)
        self.scaler.step(optimizer)
        self.scaler.update()

    def state_dict(self) -> dict[str, Any]:
        return self.scaler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            self.scaler.load_state_dict(state)
