"""Exact resume: the training state a checkpoint holds beyond the model's weights.

``training_state`` gathers the model, optimiser, scheduler, scaler, EMA, epoch, step,
best metric, every RNG state (of every process under DDP) and the model card;
``restore_training_state`` puts it back into freshly built training parts, so that a
resumed run continues as if it had never stopped.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..card import ModelCard
from ..checkpoint import check_compatible
from ..log import logger
from .distributed import gather_objects

if TYPE_CHECKING:
    from .build import TrainParts


def rng_state() -> dict[str, Any]:
    """Every RNG the run touches, as plain data that ``weights_only`` loading accepts."""
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            n["keys"].numpy().astype(np.uint32),
            n["pos"],
            n["has_gauss"],
            n["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --------------------------------------------------------------------------- a training run
def training_state(
    parts: TrainParts,
    epoch: int,
    best: dict[str, Any],
    card: ModelCard,
) -> dict[str, Any]:
    """Everything to continue after ``epoch`` exactly; collective under DDP (every rank
    calls it: the RNG states of all ranks are gathered), rank 0 writes it."""
    rng = rng_state()
    ranks = gather_objects(rng, parts.ctx)
    return {
        "model": parts.model.state_dict(),
        "optimizer": parts.optimizer.state_dict(),
        "scheduler": parts.scheduler.state_dict(),
        "scaler": parts.precision.state_dict(),
        "ema": parts.ema.state_dict() if parts.ema is not None else None,
        "lookahead": parts.lookahead.state_dict() if parts.lookahead is not None else None,
        "epoch": epoch,
        "step": parts.scheduler.last_epoch,
        "best_value": best["value"],
        "best_epoch": best["epoch"],
        "best_metric": best["metric"],
        "top_k": [list(entry) for entry in best.get("top", [])],  # [value, epoch], best first
        "rng": rng,
        "rng_ranks": ranks if parts.ctx.enabled else None,
        "card": card.with_training_state(epoch, best["metric"], best["value"]).to_dict(),
    }


def restore_training_state(parts: TrainParts, state: dict[str, Any], source: str) -> None:
    """Load a ``training_state`` into freshly built parts, RNG states included."""
    cfg = parts.cfg
    ModelCard.from_dict(state.get("card"), source).check_fits(
        source, cfg.model.name, parts.num_classes, cfg.data.in_channels
    )
    check_compatible(parts.model, state["model"], source)
    parts.model.load_state_dict(state["model"])
    parts.optimizer.load_state_dict(state["optimizer"])
    parts.scheduler.load_state_dict(state["scheduler"])
    sync_learning_rates(parts.scheduler)
    parts.precision.load_state_dict(state.get("scaler") or {})
    if parts.ema is not None:
        if state.get("ema"):
            parts.ema.load_state_dict(state["ema"])
        else:
            logger.warning(f"{source} has no EMA weights; the average starts from the model")
            parts.ema.module.load_state_dict(state["model"])
    if parts.lookahead is not None:
        if state.get("lookahead"):
            parts.lookahead.load_state_dict(state["lookahead"])
        else:
            logger.warning(f"{source} has no lookahead average; it starts from the model")
    rng = state["rng"]
    ranks = state.get("rng_ranks")
    if ranks and len(ranks) == parts.ctx.world_size:
        rng = ranks[parts.ctx.rank]
    set_rng_state(rng)


def sync_learning_rates(scheduler: torch.optim.lr_scheduler.LambdaLR) -> None:
    """Each group's learning rate as the schedule gives it at the restored step. For the
    saved config it is the saved value; for a run resumed with another ``train.epochs``
    the schedule was rebuilt for the new length, and the first step already follows it."""
    step = scheduler.last_epoch
    groups = scheduler.optimizer.param_groups
    for group, base, factor in zip(groups, scheduler.base_lrs, scheduler.lr_lambdas):
        group["lr"] = base * factor(step)
