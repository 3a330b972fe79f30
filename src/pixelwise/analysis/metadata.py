"""Writes ``pixelwise/models/metadata.json``: ``python -m pixelwise.analysis.metadata``.

Parameters and MACs are counted by :func:`~pixelwise.analysis.complexity.model_complexity`
on the meta device (no weights allocated); the pretrained entries are read from
torchvision's weight registry (no download). Run it after adding or changing a model;
``tests/models/test_metadata.py`` fails until the file is current.
"""

from __future__ import annotations

import inspect
import json
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from ..models import MODELS, get_spec
from ..models.metadata import METADATA_FILE
from ..models.registry import has_torchvision_weights
from .complexity import model_complexity


def compute_meta(name: str) -> dict[str, Any]:
    """One model's entry, counted afresh."""
    spec = get_spec(name)
    cost = model_complexity(name)
    with_classes = spec.defaults.get("num_classes") or _default_classes(spec)
    entry: dict[str, Any] = {
        "task": spec.task,
        "params": cost.params,
        "macs": cost.macs,
        "input_size": list(spec.input_size),
        "num_classes": with_classes,
    }
    if has_torchvision_weights(name):
        entry["pretrained"] = pretrained_meta(name)
    return entry


def _default_classes(spec: Any) -> int:

    default = inspect.signature(spec.builder).parameters.get("num_classes")
    return int(default.default) if default is not None else 0


def pretrained_meta(name: str) -> dict[str, Any]:
    """How torchvision's default weights for ``name`` expect images, from its registry."""
    import torchvision  # only here: torchvision's weight registry

    weights = torchvision.models.get_model_weights(name).DEFAULT
    preset = weights.transforms()
    interpolation = getattr(preset, "interpolation", None)
    metrics = {}
    for dataset, figures in (weights.meta.get("_metrics") or {}).items():
        for figure, value in figures.items():
            metrics[f"{dataset}/{figure}"] = float(value)
    return {
        "source": f"torchvision {type(weights).__name__}.{weights.name}",
        "mean": list(getattr(preset, "mean", [])),
        "std": list(getattr(preset, "std", [])),
        "interpolation": getattr(interpolation, "value", str(interpolation)),
        "resize_size": _first(getattr(preset, "resize_size", None)),
        "crop_size": _first(getattr(preset, "crop_size", None)),
        "metrics": metrics,
    }


def _first(value: Any) -> int | None:
    if value is None:
        return None
    return int(value[0]) if isinstance(value, (list, tuple)) else int(value)


def write_metadata(path: Path | None = None) -> Path:
    path = path or Path(str(resources.files("pixelwise.models") / METADATA_FILE))
    table = {name: compute_meta(name) for name in sorted(MODELS)}
    path.write_text(json.dumps(table, indent=1) + "\n")
    return path


if __name__ == "__main__":
    print(f"wrote {write_metadata(Path(sys.argv[1]) if len(sys.argv) > 1 else None)}")
