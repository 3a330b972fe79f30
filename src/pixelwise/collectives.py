"""The one collective the figures need: a sum over processes.

``sum_over_processes`` is a no-op without ``torch.distributed``; with it, the tensor is
summed where the backend can (CUDA for NCCL, the CPU for gloo) and comes back on its own
device. The training loop (``engine.distributed``) and ``ConfusionMatrix.all_reduce``
both use it, so there is one place that knows how the processes add up.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def collective_device(group: Any = None) -> torch.device:
    """Where collectives run: the current CUDA device for NCCL, else the CPU."""
    if is_distributed() and dist.get_backend(group) == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def sum_over_processes(values: torch.Tensor, group: Any = None) -> torch.Tensor:
    """``values`` summed over every process (a copy, on ``values``' own device)."""
    if not is_distributed():
        return values
    packed = values.to(collective_device(group)).clone()
    dist.all_reduce(packed, group=group)
    return packed.to(values.device)
