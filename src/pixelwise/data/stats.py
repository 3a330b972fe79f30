"""``pixelwise data stats``: channel statistics, class frequencies and class weights.

Mean and std are per channel over every pixel of the training split at its stored size,
values in [0, 1] (what ``data.mean`` / ``data.std`` expect). Class weights against
imbalance, for ``n_c`` images (classification) or labelled pixels (segmentation) of
class ``c`` out of ``N``, over the ``C`` classes present:

* ``inverse_frequency``: ``w_c = N / (C * n_c)`` (scikit-learn's "balanced"; 1 when the
  classes are balanced).
* ``median_frequency`` (Eigen & Fergus 2015, used by SegNet): ``f_c = n_c / P_c`` with
  ``P_c`` the labelled pixels of the images in which ``c`` appears, ``w_c = median(f) / f_c``.
  For classification ``f_c = n_c / N``.

A class that never appears gets weight 0. ``resolve_class_weights`` turns
``data.class_weights`` (a list, a stats JSON, or one of the method names) into a tensor.
"""

from __future__ import annotations

import datetime
import json
import math
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..config import DataConfig, ExperimentConfig, LossConfig
from ..errors import writing
from ..log import logger
from ..losses import positive_weights
from . import build_raw_splits
from .base import Problem, base_datasets, task_of
from .findings import duplicate_problems, mask_problems
from .io import DataError
from .masks import MaskDecoder
from .scan import ItemSummary, scan_split

WEIGHT_METHODS = ("inverse_frequency", "median_frequency")
CLASS_WEIGHTS_FILE = "class_weights.json"


def inverse_frequency_weights(counts: list[int]) -> list[float]:
    total, present = sum(counts), sum(1 for n in counts if n > 0)
    return [total / (present * n) if n > 0 else 0.0 for n in counts]


def median_frequency_weights(counts: list[int], totals: list[int] | None = None) -> list[float]:
    """``totals[c]``: pixels of the images containing class ``c`` (None: all samples)."""
    grand = sum(counts)
    freqs = [
        n / (totals[c] if totals is not None else grand) if n > 0 else 0.0
        for c, n in enumerate(counts)
    ]
    present = [f for f in freqs if f > 0]
    if not present:
        return [0.0] * len(counts)
    median = statistics.median(present)
    return [median / f if f > 0 else 0.0 for f in freqs]


@dataclass
class DataStats:
    split: str
    items: int
    unreadable: int
    class_names: list[str]
    class_counts: list[int]  # images (classification, multilabel) or labelled pixels
    class_frequency: list[float]
    mean: list[float] | None
    std: list[float] | None
    class_weights: dict[str, list[float]] = field(default_factory=dict)
    default_method: str = "inverse_frequency"
    task: str = "classification"
    problems: list[Problem] = field(default_factory=list)  # findings: copies, lossy masks

    def to_dict(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        return {**asdict(self), **(extra or {})}


def compute_stats(
    cfg: ExperimentConfig,
    split: str | None = None,
    pixel_stats: bool = True,
    run_dir: Path | None = None,
    num_workers: int | None = None,
    limit: int | None = None,
) -> DataStats:
    """Statistics of one split (the training split by default), reading it once."""

    raw, class_names = build_raw_splits(cfg, run_dir)
    name = split or cfg.data.train_split
    if name not in raw:
        raise DataError(f"split {name!r} not in this dataset (has: {', '.join(raw)})")
    num_classes = len(class_names)
    scan = scan_split(
        raw[name],
        num_classes,
        cfg.data.ignore_index,
        read_images=pixel_stats,
        pixel_stats=pixel_stats,
        num_workers=cfg.data.num_workers if num_workers is None else num_workers,
        limit=limit,
        desc=f"stats {name}",
    )
    good = scan.good
    counts = [0] * num_classes
    totals = [0] * num_classes
    segmentation = task_of(raw[name]) == "segmentation"
    for item in good:
        if item.class_pixels is not None:
            pixels = item.class_pixels
            labelled = sum(pixels)
            for c, n in enumerate(pixels):
                counts[c] += n
                totals[c] += labelled if n > 0 else 0
        elif item.label is not None:
            counts[item.label] += 1
        elif item.label_set is not None:  # multilabel: images carrying each label
            for c in item.label_set:
                counts[c] += 1
    task = task_of(raw[name])
    grand = len(good) if task == "multilabel" else sum(counts)
    mean = std = None
    if pixel_stats and good:
        sums = torch.tensor([item.pixel_sum for item in good], dtype=torch.float64).sum(0)
        squares = torch.tensor([item.pixel_sq_sum for item in good], dtype=torch.float64).sum(0)
        pixels = sum(item.size[0] * item.size[1] for item in good)  # type: ignore[index]
        mean_t = sums / pixels
        std_t = (squares / pixels - mean_t**2).clamp(min=0).sqrt()
        mean, std = [round(v, 6) for v in mean_t.tolist()], [round(v, 6) for v in std_t.tolist()]
    problems = duplicate_problems({name: good})
    decoder = next((getattr(b, "decoder", None) for b in base_datasets(raw[name])), None)
    if isinstance(decoder, MaskDecoder):
        problems += mask_problems(good, decoder, num_classes)
    weights = {
        "inverse_frequency": inverse_frequency_weights(counts),
        "median_frequency": median_frequency_weights(counts, totals if segmentation else None),
    }
    default = "median_frequency" if segmentation else "inverse_frequency"
    if task == "multilabel":  # BCE weighs positives per label instead (loss.pos_weight)
        weights, default = {"pos_weight": pos_weight_of(good, num_classes)}, "pos_weight"
    return DataStats(
        split=name,
        items=len(scan.items),
        unreadable=len(scan.errors),
        class_names=class_names,
        class_counts=counts,
        class_frequency=[n / grand if grand else 0.0 for n in counts],
        mean=mean,
        std=std,
        class_weights=weights,
        default_method=default,
        task=task,
        problems=problems,
    )


def pos_weight_of(items: list[ItemSummary], num_classes: int) -> list[float]:
    """Multi-label ``loss.pos_weight`` of these items, as ``loss.pos_weight: auto``
    computes it (``losses.positive_weights``: negatives / positives per label)."""
    targets = torch.zeros(len(items), num_classes, dtype=torch.int64)
    for row, item in enumerate(items):
        targets[row, item.label_set or []] = 1
    weights = positive_weights(LossConfig(pos_weight="auto"), targets)
    return weights.tolist() if weights is not None else [1.0] * num_classes


def write_stats(stats: DataStats, path: Path, cfg: ExperimentConfig) -> Path:
    """The stats JSON that ``data.class_weights: <path>`` can reference."""
    extra = {
        "format": cfg.data.format,
        "root": cfg.data.root,
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
    }
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(stats.to_dict(extra), indent=1))
    return path


# --------------------------------------------------------------------------- class weights
def resolve_class_weights(
    data_cfg: DataConfig, num_classes: int, run_dir: Path | str | None = None, seed: int = 0
) -> torch.Tensor | None:
    """``data.class_weights`` as a (num_classes,) float tensor, or None.

    Accepted: a list of floats; a method name (``inverse_frequency``,
    ``median_frequency``) computed from the training split (the run's saved split when
    ``run_dir`` has one; the result is saved there as ``class_weights.json`` and reused);
    or the path of a JSON written by ``pixelwise data stats``, optionally ``PATH:method``.
    ``data.class_weight_power`` then raises each weight to that power: median-frequency
    weights span 0.15 to 8.8 on CamVid, and a power below 1 narrows the range, trading less
    of the large classes' accuracy for the small ones. Call it after ``build_datasets``
    so that the run's split exists.
    """
    spec = data_cfg.class_weights
    if spec is None:
        return None
    if isinstance(spec, list):
        weights = [float(w) for w in spec]
        source = "data.class_weights"
    elif spec in WEIGHT_METHODS:
        weights, source = _computed_weights(data_cfg, spec, run_dir, seed), spec
    else:
        weights, source = _weights_from_file(spec), spec
    if len(weights) != num_classes:
        raise DataError(
            f"data.class_weights ({source}): {len(weights)} weights for {num_classes} classes"
        )
    if any(not math.isfinite(w) or w < 0 for w in weights):
        raise DataError(f"data.class_weights ({source}): weights must be finite and >= 0")
    power = data_cfg.class_weight_power
    tempered = [w**power if w > 0 else 0.0 for w in weights]  # an absent class stays at 0
    return torch.tensor(tempered, dtype=torch.float32)


def _weights_from_file(spec: str) -> list[float]:
    path_text, method = spec, None
    head, _, tail = spec.rpartition(":")
    if head and tail in WEIGHT_METHODS:
        path_text, method = head, tail
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise DataError(
            f"data.class_weights={spec!r}: not a list, a method ({', '.join(WEIGHT_METHODS)}) "
            "or an existing stats JSON (write one with `pixelwise data stats CONFIG`)"
        )
    try:
        saved = json.loads(path.read_text())
        method = method or saved.get("default_method", "inverse_frequency")
        return [float(w) for w in saved["class_weights"][method]]
    except (KeyError, TypeError, ValueError) as err:
        raise DataError(
            f"data.class_weights={spec!r}: {path} has no class_weights.{method} "
            "(expected the JSON of `pixelwise data stats`)"
        ) from err


def _computed_weights(
    data_cfg: DataConfig, method: str, run_dir: Path | str | None, seed: int
) -> list[float]:
    saved_path = Path(run_dir) / CLASS_WEIGHTS_FILE if run_dir is not None else None
    if saved_path is not None and saved_path.is_file():
        saved = json.loads(saved_path.read_text())
        if saved.get("method") == method:
            return [float(w) for w in saved["weights"]]
    has_split = run_dir is not None and (Path(run_dir) / "splits.json").is_file()
    cfg = ExperimentConfig(data=data_cfg, seed=seed)
    stats = compute_stats(cfg, pixel_stats=False, run_dir=Path(run_dir) if has_split else None)
    weights = stats.class_weights[method]
    logger.info(
        f"class weights ({method}, {stats.split} split): "
        + ", ".join(f"{n}={w:.3g}" for n, w in zip(stats.class_names, weights))
    )
    if saved_path is not None:
        saved_path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"method": method, "class_names": stats.class_names, "weights": weights}
        saved_path.write_text(json.dumps(payload, indent=1))
    return weights
