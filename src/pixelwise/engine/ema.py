"""An exponential moving average of the model's weights, evaluated and saved apart.

After every optimiser step ``ema = d * ema + (1 - d) * weights``, with the decay
warmed up as ``d_t = min(decay, (1 + t) / (10 + t))`` (t = updates so far) so that
the average does not remember the random initialisation for thousands of steps.
Buffers (BatchNorm running statistics) are copied, not averaged.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class ModelEma:
    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        self.decay = decay
        self.updates = 0
        self.module = copy.deepcopy(model).eval()
        for param in self.module.parameters():
            param.requires_grad_(False)

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        weight = 1.0 - self.current_decay()
        self.updates += 1
        ema_params = [p for p in self.module.parameters()]
        params = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(ema_params, params, weight)
        for ema_buffer, buffer in zip(self.module.buffers(), model.buffers()):
            ema_buffer.copy_(buffer)

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["model"])
        self.updates = int(state["updates"])


class Lookahead:
    """airbench's lookahead (Jordan, 2024): every ``every`` optimiser steps the weights
    are pulled to an exponential average of themselves and training continues from the
    average (Zhang et al., 2019, "Lookahead Optimizer", with a slow weight that is a
    moving average). The average's decay grows with training as
    ``decay ** every * (t / T) ** 3``: no memory at the start, when the weights move
    fast, and the most at the end, where it smooths the last steps' noise; after the last
    step the model is the average. Floating buffers (BatchNorm statistics) are averaged
    with the weights, as airbench does.
    """

    def __init__(self, model: nn.Module, total_steps: int, decay: float = 0.95, every: int = 5):
        self.total_steps, self.decay, self.every = max(1, total_steps), decay, every
        self.average = {
            k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()
        }

    @torch.no_grad()
    def pull(self, model: nn.Module, decay: float) -> None:
        current = model.state_dict()
        for name, average in self.average.items():
            average.lerp_(current[name], 1 - decay)
            current[name].copy_(average)

    def after_step(self, model: nn.Module, step: int) -> None:
        """Call after optimiser step ``step`` (1-based, counted over the whole run)."""
        if step % self.every == 0:
            self.pull(
                model,
                self.decay**self.every * (min(step, self.total_steps) / self.total_steps) ** 3,
            )
        if step == self.total_steps:
            self.pull(model, 1.0)

    def state_dict(self) -> dict[str, Any]:
        return {"average": self.average}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, value in state["average"].items():
            self.average[name].copy_(value)
