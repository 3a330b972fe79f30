"""Checkpoint files: written atomically, read with ``weights_only=True``.

A checkpoint is a dict of tensors and plain data: the model's state dict (``model``),
its model card (``card``, :mod:`pixelwise.card`) and, for a training run, everything to
continue it exactly (``engine.resume``). Reading never runs code from the file: a
pickle that would call anything but tensor and container constructors is refused,
naming what it would have called.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from .errors import UserError


class CheckpointError(UserError):
    """A checkpoint that cannot be read, or was made for another model."""


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """Write to a temporary file in the same folder, then rename over ``path``.

    At every instant ``path`` is either the previous complete file or the new complete
    one: a kill or a full disk while writing leaves the previous checkpoint intact (and
    at most a ``.<name>.*.tmp`` file, which ``RunDir.remove_temporary_files`` deletes).
    The state is serialised in memory first, so a write error is an ``OSError`` with its
    reason (``no space left on device``), reported as one line naming the path.
    """
    path = Path(path)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(buffer.getbuffer())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        raise CheckpointError(
            f"cannot write checkpoint {path}: {(err.strerror or str(err)).lower()}; "
            "the previous checkpoint is intact"
        ) from err
    finally:
        if tmp is not None and Path(tmp).exists():
            Path(tmp).unlink(missing_ok=True)
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
    """Read a checkpoint with ``weights_only=True``: a file that tries to run code is refused.

    Every failure is one :class:`CheckpointError` line naming the file: missing, empty,
    truncated, not a checkpoint, or a pickle that would call something (named).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file (0 bytes), not a checkpoint")
    try:
        state = _torch_load(path, map_location)
    except Exception as err:  # pickle.UnpicklingError, zip and EOF errors of a truncated file
        raise CheckpointError(refusal(path, err)) from err
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{path}: not a pixelwise checkpoint (no 'model' entry)")
    return state


def _torch_load(path: Path, map_location: str | torch.device) -> Any:
    """``torch.load(weights_only=True)`` without torch's warning about a pickle protocol
    other than 2: a file it cannot read gets the one line of :func:`refusal` instead."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Detected pickle protocol")
        return torch.load(path, map_location=map_location, weights_only=True)


def refusal(path: Path, err: BaseException) -> str:
    """Why ``weights_only`` loading refused a file, in one line. torch's own message
    starts by suggesting ``weights_only=False``, which would run the file's code: it is
    never repeated."""
    text = str(err)
    # "Unsupported global: GLOBAL x.y" (allowed module, unknown name) or "unsupported
    # GLOBAL posix.system whose module posix is blocked" (os, subprocess, builtins...)
    found = re.search(r"[Uu]nsupported (?:global: )?GLOBAL ([\w.]+)", text)
    if found:
        return (
            f"{path}: refused to load: unpickling it would call {found.group(1)}, and a "
            "checkpoint holds only tensors and plain data (read with weights_only=True); "
            "nothing in it was run"
        )
    if re.search(r"Unsupported operand \d+", text):
        return (
            f"{path}: refused to load: it holds pickle instructions that torch.save never "
            "writes, so it is not a checkpoint (read with weights_only=True); nothing in it "
            "was run"
        )
    if isinstance(err, (EOFError, RuntimeError)) and (
        "zip" in text.lower() or "eof" in text.lower() or "ran out of input" in text.lower()
    ):
        return (
            f"{path}: truncated or corrupt file ({type(err).__name__}); not a readable checkpoint"
        )
    lines = [line for line in text.splitlines() if line.strip() and "weights_only" not in line]
    reason = lines[0].strip() if lines else type(err).__name__
    return f"{path}: not a readable checkpoint: {reason}"


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a weights file: a raw state dict (torchvision's, timm's), a
    pixelwise checkpoint's ``model``, or a ``.safetensors`` file; errors as in
    :func:`load_checkpoint`."""
    path = Path(path)
    if path.is_dir() and (path / "model.safetensors").is_file():
        path = path / "model.safetensors"  # a folder as save_pretrained writes one
    if not path.is_file():
        raise CheckpointError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file  # optional dependency (the export extra)

        try:
            return load_file(str(path))
        except Exception as err:  # a header or size that does not parse
            raise CheckpointError(f"{path}: not a readable safetensors file: {err}") from err
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file (0 bytes), not a weights file")
    try:
        obj = _torch_load(path, "cpu")
    except Exception as err:
        raise CheckpointError(refusal(path, err)) from err
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: expected a state dict of tensors, got {type(obj).__name__}")
    return obj


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


def average_state_dicts(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The element-wise mean of several checkpoints' weights (timm's ``avg_checkpoints``):
    floating tensors (weights, BatchNorm's running statistics) are averaged in float64
    and cast back; integer ones (``num_batches_tracked``) are the first state's."""
    if not states:
        raise CheckpointError("no checkpoint to average")
    keys = list(states[0])
    for other in states[1:]:
        if list(other) != keys:
            raise CheckpointError("the checkpoints to average hold different tensors")
    averaged = {}
    for key in keys:
        first = states[0][key]
        if first.is_floating_point():
            total = sum(s[key].to(torch.float64) for s in states)
            averaged[key] = (total / len(states)).to(first.dtype)
        else:
            averaged[key] = first.clone()
    return averaged
