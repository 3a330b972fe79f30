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
from typing import Any

import numpy as np
import torch


class CheckpointError(ValueError):
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
        raise CheckpointError(
            f"{source} has different shapes in {len(mismatched)} tensors (first: {key}: "
            f"{tuple(state_dict[key].shape)} in the checkpoint vs {tuple(own[key].shape)} in the model): "
            "was it trained with another class count or input channels?"
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
