"""Where a run happens: device, seeds, and its own run directory."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch


def select_device(name: str = "auto") -> torch.device:
    """CUDA when present (or asked for), else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device={name!r} asked for, but CUDA is not available here")
    return device


def seed_everything(seed: int, deterministic: bool = False) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def new_run_dir(output_dir: str | Path, name: str) -> Path:
    """``output_dir/name``, or ``name-2``, ``name-3``... if taken: never overwrite a run."""
    base = Path(output_dir)
    candidate, n = base / name, 1
    while candidate.exists():
        n += 1
        candidate = base / f"{name}-{n}"
    candidate.mkdir(parents=True)
    return candidate
