"""Distributed data-parallel training with ``torch.distributed``, launched by ``torchrun``.

``torchrun --nproc_per_node=2 -m pixelwise train CONFIG`` starts one process per
device and sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; the same command with
``--nnodes`` and a c10d rendezvous address scales to many machines. ``RANK`` (global)
decides who writes, ``LOCAL_RANK`` (within a node) picks the GPU. Each process trains on
its shard of every epoch (``DistributedSampler``), DDP averages the gradients, and
rank 0 alone writes files. Evaluation shards without padding (``ShardSampler``) and
sums the confusion matrices, so no sample is counted twice; in training, the
duplicates ``DistributedSampler`` adds to even out the shards are left out of the
training figures (they still give gradients, as in every DDP run).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset, DistributedSampler, Sampler

from ..collectives import sum_over_processes
from ..errors import UserError
from ..runtime import select_device

T = TypeVar("T")


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False  # this process started the group, so it ends it

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device_name: str = "auto") -> DistContext:
    """Join the process group that ``torchrun`` describes, or run as a single process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    owns = False
    if world_size > 1 and not dist.is_initialized():
        use_cuda = torch.cuda.is_available() and device_name != "cpu"
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        owns = True
    if not dist.is_initialized():
        return DistContext(device=select_device(device_name))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = select_device(device_name)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, device, owns)


def cleanup(ctx: DistContext) -> None:
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + world, ...``: every sample on exactly one process, no padding
    (shards may differ by one sample, which evaluation does not mind)."""

    def __init__(self, dataset: Dataset, rank: int, world_size: int) -> None:
        self.indices = list(range(rank, len(dataset), world_size))  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def train_sampler(dataset: Dataset, ctx: DistContext, seed: int) -> DistributedSampler | None:
    if not ctx.enabled:
        return None
    return DistributedSampler(
        dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=seed
    )


def eval_sampler(dataset: Dataset, ctx: DistContext) -> ShardSampler | None:
    return ShardSampler(dataset, ctx.rank, ctx.world_size) if ctx.enabled else None


def real_samples(dataset_size: int, rank: int, world_size: int) -> int:
    """How many of this rank's ``DistributedSampler`` samples are not padding.

    The sampler pads the permutation to a multiple of ``world_size`` by repeating its
    start, then gives rank ``r`` the positions ``r, r + world, ...``; positions past
    ``dataset_size`` are the repeats, and they come last on each rank.
    """
    return len(range(rank, dataset_size, world_size))


def all_reduce_sum(values: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum a tensor over processes (a copy, on the tensor's own device)."""
    return sum_over_processes(values) if ctx.enabled else values


def broadcast_object(obj: T, ctx: DistContext) -> T:
    """Rank 0's ``obj`` on every process."""
    if not ctx.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(obj: Any, ctx: DistContext) -> list[Any]:
    if not ctx.enabled:
        return [obj]
    gathered: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def main_first(ctx: DistContext, work: Callable[[], T]) -> T:
    """Rank 0 does ``work`` first (it may write files, e.g. ``splits.json``), then the rest."""
    if ctx.is_main:
        result = work()
    if ctx.enabled:
        dist.barrier()
    if not ctx.is_main:
        result = work()
    return result


def sync_buffers(model: nn.Module, ctx: DistContext) -> None:
    """Give every process rank 0's buffers (BatchNorm running statistics) before
    evaluation, so that all shards are judged by the weights that rank 0 saves."""
    if not ctx.enabled:
        return
    for buffer in model.buffers():
        dist.broadcast(buffer.data, src=0)


def wrap(model: nn.Module, ctx: DistContext) -> nn.Module:
    """DDP around ``model`` when distributed (it tracks only trainable parameters, so
    the trainer wraps again after an unfreezing)."""
    if not ctx.enabled:
        return model
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def convert_sync_batchnorm(model: nn.Module, ctx: DistContext) -> nn.Module:
    """BatchNorm statistics over the global batch; PyTorch implements it for CUDA only."""
    if not ctx.enabled:
        return model
    if ctx.device.type != "cuda":
        raise UserError(
            "train.sync_batchnorm: PyTorch's SyncBatchNorm runs on CUDA only; "
            "set train.sync_batchnorm=false for CPU processes"
        )
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)
