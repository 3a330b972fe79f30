"""The logits of a model's output, without importing the training engine.

Models return logits, or ``{"out": logits, "aux": ...}`` in training mode (the same
rule as ``engine.evaluate.main_output``); analysis and pictures need only this.
"""

from __future__ import annotations

from typing import Any

import torch


def logits_of(output: Any) -> torch.Tensor:
    """A tensor as is; ``output["out"]`` of a dict; the first item of a tuple."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, dict):
        return output["out"]
    return output[0]
