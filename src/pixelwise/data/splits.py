"""Seeded, stratified train/val/test splits, saved so that a later ``eval`` reuses them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split


def stratified_split(
    labels: Sequence[int], val_fraction: float, test_fraction: float, seed: int
) -> dict[str, list[int]]:
    """Indices per split, each class represented in proportion (where counts allow)."""
    labels = np.asarray(labels)
    indices = np.arange(len(labels))
    splits: dict[str, list[int]] = {}
    rest, rest_labels = indices, labels
    holdout = val_fraction + test_fraction
    if holdout > 0:
        rest, held, rest_labels, held_labels = train_test_split(
            indices, labels, test_size=holdout, random_state=seed, stratify=_stratify(labels)
        )
        if test_fraction > 0 and val_fraction > 0:
            val, test = train_test_split(
                held,
                test_size=test_fraction / holdout,
                random_state=seed,
                stratify=_stratify(held_labels),
            )
            splits["val"], splits["test"] = sorted(val.tolist()), sorted(test.tolist())
        elif val_fraction > 0:
            splits["val"] = sorted(held.tolist())
        else:
            splits["test"] = sorted(held.tolist())
    splits["train"] = sorted(rest.tolist())
    return splits


def _stratify(labels: np.ndarray) -> np.ndarray | None:
    """Stratify only when every class has at least two members."""
    _, counts = np.unique(labels, return_counts=True)
    return labels if counts.min() >= 2 else None


def load_or_make_splits(
    path: Path | None, labels: Sequence[int], val_fraction: float, test_fraction: float, seed: int
) -> dict[str, list[int]]:
    """Read ``path`` if it exists (a saved run); otherwise split and write it there."""
    if path is not None and path.is_file():
        saved = json.loads(path.read_text())
        if max((max(v) for v in saved.values() if v), default=-1) >= len(labels):
            raise ValueError(f"{path}: saved split refers to more samples than the dataset has")
        return saved
    splits = stratified_split(labels, val_fraction, test_fraction, seed)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(splits))
    return splits
