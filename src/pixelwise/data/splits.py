"""Seeded, stratified splits, saved so that a later ``eval`` reuses them.

A dataset's own splits are kept (CIFAR's train/test, CamVid's train/val lists, a
folder per split). A split the dataset lacks is carved out of the training split by
``data.val_fraction`` / ``data.test_fraction`` (0 = do without it), stratified by class
where labels are known, and written to the run's ``splits.json`` as indices into the
training split together with its size; a later ``eval`` of the run reads the same
indices back and refuses them if the training split has changed size since.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset, Subset

from ..config import DataConfig
from .base import base_datasets, labels_of, strata_of
from .io import DataError


def stratified_split(
    labels: Sequence[int], val_fraction: float, test_fraction: float, seed: int
) -> dict[str, list[int]]:
    """Indices per split (train, val, test), each class in proportion where counts allow."""
    return split_by_fractions(labels, {"val": val_fraction, "test": test_fraction}, seed)


def split_by_fractions(
    labels: Sequence[int], fractions: dict[str, float], seed: int, train_name: str = "train"
) -> dict[str, list[int]]:
    """Hold out ``fractions[name]`` of the samples per named split; the rest is train.

    Stratified by ``labels`` when every class has at least two members and the held-out
    part has room for every class; otherwise a plain seeded shuffle.
    """
    labels = np.asarray(labels)
    fractions = {name: f for name, f in fractions.items() if f > 0}
    rest = np.arange(len(labels))
    splits: dict[str, list[int]] = {}
    remaining = 1.0
    for name, fraction in fractions.items():
        share = fraction / remaining  # of what is left after earlier held-out splits
        rest, held = _split(rest, labels[rest], share, seed)
        splits[name] = sorted(held.tolist())
        remaining -= fraction
    splits[train_name] = sorted(rest.tolist())
    return splits


def _split(
    indices: np.ndarray, labels: np.ndarray, share: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split  # 0.9 s to import: only when splitting

    if len(indices) < 2:
        raise DataError(f"cannot split {len(indices)} sample(s): lower data.val/test_fraction")
    _, counts = np.unique(labels, return_counts=True)
    stratify = labels if counts.min() >= 2 else None
    try:
        keep, held = train_test_split(
            indices, test_size=share, random_state=seed, stratify=stratify
        )
    except ValueError:  # held-out part smaller than the number of classes
        keep, held = train_test_split(indices, test_size=share, random_state=seed)
    return keep, held


def load_or_make_splits(
    path: Path | None,
    labels: Sequence[int],
    val_fraction: float,
    test_fraction: float,
    seed: int,
    names: tuple[str, str, str] = ("train", "val", "test"),
) -> dict[str, list[int]]:
    """Read ``path`` if it exists (a saved run); otherwise split and write it there."""
    if path is not None and path.is_file():
        return read_splits(path, len(labels))
    train, val, test = names
    splits = split_by_fractions(labels, {val: val_fraction, test: test_fraction}, seed, train)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"source_size": len(labels), "seed": seed, "splits": splits}))
    return splits


def read_splits(path: Path, source_size: int) -> dict[str, list[int]]:
    saved = json.loads(path.read_text())
    splits = saved.get("splits", saved) if isinstance(saved, dict) else saved
    size = saved.get("source_size") if isinstance(saved, dict) else None
    if size is not None and size != source_size:
        raise DataError(
            f"{path}: saved split was made from {size} samples but the data now has "
            f"{source_size}; the dataset changed since this run was trained"
        )
    if max((max(v) for v in splits.values() if v), default=-1) >= source_size:
        raise DataError(f"{path}: saved split refers to more samples than the dataset has")
    return splits


def carve_missing_splits(
    own: dict[str, Dataset], cfg: DataConfig, seed: int, split_file: Path | None
) -> dict[str, Dataset]:
    """The dataset's own splits, plus val/test carved from train where it has none."""
    if cfg.train_split not in own:
        raise DataError(
            f"data.train_split={cfg.train_split!r}: the dataset has splits {', '.join(own)}"
        )
    fractions = {
        name: fraction
        for name, fraction in (
            (cfg.val_split, cfg.val_fraction),
            (cfg.test_split, cfg.test_fraction),
        )
        if name not in own and fraction > 0
    }
    if not fractions:
        return dict(own)
    pool = own[cfg.train_split]
    if len(pool) == 0:  # type: ignore[arg-type]
        first = next((p.message for b in base_datasets(pool) for p in b.problems), None)
        raise DataError(
            f"data.root={cfg.root}: the {cfg.train_split} split has no usable items, so no "
            f"{' or '.join(fractions)} split can be carved from it"
            + (f"; first problem: {first}" if first else "")
        )
    labels = strata_of(pool) or [0] * len(pool)  # type: ignore[arg-type]
    names = (cfg.train_split, cfg.val_split, cfg.test_split)
    indices = load_or_make_splits(
        split_file,
        labels,
        fractions.get(cfg.val_split, 0.0),
        fractions.get(cfg.test_split, 0.0),
        seed,
        names,
    )
    splits = {name: ds for name, ds in own.items() if name != cfg.train_split}
    for name, idx in indices.items():
        splits[name] = Subset(pool, idx)
    order = [cfg.train_split, cfg.val_split, cfg.test_split]
    return dict(sorted(splits.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 3))


# --------------------------------------------------------------------------- class selection
class RelabeledSubset(Subset):
    """Items ``indices`` of a classification split, labels renumbered by ``mapping``."""

    def __init__(self, dataset: Dataset, indices: list[int], mapping: dict[int, int]) -> None:
        super().__init__(dataset, indices)
        self.mapping = mapping
        inner = labels_of(dataset) or []
        self.labels = [mapping[inner[i]] for i in indices]

    def __getitem__(self, index: int):  # type: ignore[override]
        image, label = self.dataset[self.indices[index]]
        return image, self.mapping[label]

    def __getitems__(self, indices: list[int]) -> list:  # type: ignore[override]
        return [self[i] for i in indices]


def select_classes(
    splits: dict[str, Dataset], cfg: DataConfig, class_names: list[str]
) -> tuple[dict[str, Dataset], list[str]]:
    """Apply ``data.include_classes`` (keep these, renumbered in the listed order) and
    ``data.samples_per_class`` (the first n of each class in the training split)."""
    if cfg.include_classes is None and cfg.samples_per_class is None:
        return splits, class_names
    include = cfg.include_classes or list(range(len(class_names)))
    bad = [c for c in include if not 0 <= c < len(class_names)]
    if bad:
        raise DataError(
            f"data.include_classes: {bad} are not class indices 0..{len(class_names) - 1}"
        )
    mapping = {old: new for new, old in enumerate(include)}
    selected = {}
    for name, split in splits.items():
        labels = labels_of(split)
        if labels is None:
            raise DataError("data.include_classes and data.samples_per_class need class labels")
        keep = [i for i, label in enumerate(labels) if label in mapping]
        if name == cfg.train_split and cfg.samples_per_class is not None:
            seen: dict[int, int] = {}
            first = []
            for i in keep:
                seen[labels[i]] = seen.get(labels[i], 0) + 1
                if seen[labels[i]] <= cfg.samples_per_class:
                    first.append(i)
            keep = first
        selected[name] = RelabeledSubset(split, keep, mapping)
    return selected, [class_names[c] for c in include]
