"""Checkpoints: written atomically, read with ``weights_only=True``.

A checkpoint holds everything to continue a run exactly (model, optimiser,
scheduler, scaler, EMA, epoch, step, best metric, every RNG state) and a model card
(``card``) with everything needed to predict without the config.
"""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..errors import UserError

if TYPE_CHECKING:
    from .build import TrainParts


class CheckpointError(UserError):
    """A checkpoint that cannot be read, or was made for another model."""


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """Write to a temporary file in the same folder, then rename over ``path``.

    A crash while writing leaves the previous checkpoint intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``: a file that tries to run code is refused."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # pickle.UnpicklingError and friends
        raise CheckpointError(
            f"{path}: refused to load (only tensors and plain data are allowed): {str(err).splitlines()[0]}"
        ) from err
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{path}: not a pixelwise checkpoint (no 'model' entry)")
    return state


def check_card(
    card: dict[str, Any] | None,
    source: str,
    model_name: str,
    num_classes: int,
    in_channels: int,
) -> None:
    """One sentence when a checkpoint's model card names another model or class count."""
    if not card:
        return
    if card.get("model") not in (None, model_name):
        raise CheckpointError(
            f"{source} holds a '{card['model']}' model, but this run builds '{model_name}'"
        )
    if card.get("num_classes") not in (None, num_classes):
        raise CheckpointError(
            f"{source} was trained for {card['num_classes']} classes, but this run has "
            f"{num_classes}"
        )
    if card.get("in_channels") not in (None, in_channels):
        raise CheckpointError(
            f"{source} expects {card['in_channels']} input channels, but this run has "
            f"{in_channels} (data.in_channels)"
        )


def check_compatible(
    model: torch.nn.Module, state_dict: dict[str, torch.Tensor], source: str
) -> None:
    """Fail with a sentence, not a page of missing keys, when weights belong elsewhere."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [k for k in own if k in state_dict and own[k].shape != state_dict[k].shape]
    if not (missing or unexpected or mismatched):
        return
    if mismatched and not missing and not unexpected:
        key = mismatched[0]
        theirs, ours = tuple(state_dict[key].shape), tuple(own[key].shape)
        last = [k for k in own if own[k].dim() >= 1][-1]
        if mismatched[-1] == last and theirs[1:] == ours[1:]:
            reason = (
                f"was trained for {state_dict[last].shape[0]} classes, "
                f"and this model has {own[last].shape[0]}"
            )
        elif len(theirs) == len(ours) == 4 and theirs[0] == ours[0] and theirs[1] != ours[1]:
            reason = f"expects {theirs[1]} input channels, and this model takes {ours[1]}"
        else:
            reason = "was made for another model"
        raise CheckpointError(
            f"{source} {reason} ({len(mismatched)} tensors differ in shape, first {key}: "
            f"{theirs} in the checkpoint vs {ours} in the model)"
        )
    raise CheckpointError(
        f"{source} was made for another model: {len(missing)} of the model's tensors are missing "
        f"(first: {missing[:2]}), {len(unexpected)} are unknown to it (first: {unexpected[:2]})"
    )


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
    card: dict[str, Any],
) -> dict[str, Any]:
    """Everything to continue after ``epoch`` exactly; collective under DDP (every rank
    calls it: the RNG states of all ranks are gathered), rank 0 writes it."""
    from .distributed import gather_objects

    rng = rng_state()
    ranks = gather_objects(rng, parts.ctx)
    return {
        "model": parts.model.state_dict(),
        "optimizer": parts.optimizer.state_dict(),
        "scheduler": parts.scheduler.state_dict(),
        "scaler": parts.precision.state_dict(),
        "ema": parts.ema.state_dict() if parts.ema is not None else None,
        "epoch": epoch,
        "step": parts.scheduler.last_epoch,
        "best_value": best["value"],
        "best_epoch": best["epoch"],
        "best_metric": best["metric"],
        "rng": rng,
        "rng_ranks": ranks if parts.ctx.enabled else None,
        "card": {
            **card,
            "epochs": epoch,
            "best_metric": best["metric"],
            "best_value": best["value"],
        },
    }


def restore_training_state(parts: TrainParts, state: dict[str, Any], source: str) -> None:
    """Load a ``training_state`` into freshly built parts, RNG states included."""
    from ..log import logger

    cfg = parts.cfg
    check_card(state.get("card"), source, cfg.model.name, parts.num_classes, cfg.data.in_channels)
    check_compatible(parts.model, state["model"], source)
    parts.model.load_state_dict(state["model"])
    parts.optimizer.load_state_dict(state["optimizer"])
    parts.scheduler.load_state_dict(state["scheduler"])
    parts.precision.load_state_dict(state.get("scaler") or {})
    if parts.ema is not None:
        if state.get("ema"):
            parts.ema.load_state_dict(state["ema"])
        else:
            logger.warning(f"{source} has no EMA weights; the average starts from the model")
            parts.ema.module.load_state_dict(state["model"])
    rng = state["rng"]
    ranks = state.get("rng_ranks")
    if ranks and len(ranks) == parts.ctx.world_size:
        rng = ranks[parts.ctx.rank]
    set_rng_state(rng)
