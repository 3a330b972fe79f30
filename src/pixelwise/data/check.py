"""``pixelwise data check``: read every file once and report what would break training,
and what would make its figures wrong.

Reported: items per split and per class (pixels per class for segmentation), image
sizes, file kinds (format and mode) and stored mask values per split; errors:
unreadable, empty, truncated or non-image files, images above
``data.max_image_pixels``, images without a mask or without a valid-region mask
(``data.valid_mask_dir``), masks whose size differs from their image (with
``data.resize_masks=nearest``: is not a uniform scale of it), mask values that are
neither a class nor ``ignore_index``, class names that differ between splits. ``ok`` is False when any of them is an error. Warnings (masks
without images, classes absent from a split, folder links not followed, and the
``findings``: copies of images, lossy masks, masks with more values than classes, rare
file kinds, masks resized to their image) leave it True; ``loud`` lists those that make
the figures meaningless.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ..config import ExperimentConfig
from . import build_raw_splits
from .base import Problem, base_datasets, task_of
from .findings import (
    duplicate_problems,
    json_histogram,
    mask_problems,
    rare_kind_problems,
    stored_histogram,
)
from .masks import MaskDecoder
from .scan import ItemSummary, scan_split


@dataclass
class SplitReport:
    name: str
    items: int
    readable: int
    class_counts: list[int]  # images per class; labelled pixels per class for segmentation
    images_with_class: list[int]  # segmentation: images in which each class appears
    ignored_pixels: int
    sizes: Counter = field(default_factory=Counter)  # (height, width) -> images
    image_kinds: Counter = field(default_factory=Counter)  # "JPEG RGB" -> files
    mask_kinds: Counter = field(default_factory=Counter)  # "PNG L" -> files
    mask_values: Counter = field(default_factory=Counter)  # stored mask value -> pixels
    resized_masks: int = 0  # masks resized to their image (data.resize_masks=nearest)


_COUNTERS = ("sizes", "image_kinds", "mask_kinds", "mask_values")


@dataclass
class CheckReport:
    format: str
    root: str | None
    task: str
    class_names: list[str]
    splits: dict[str, SplitReport]
    problems: list[Problem]
    limited: bool = False

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity != "error"]

    @property
    def loud(self) -> list[Problem]:
        """Warnings that make the figures meaningless (printed as WARNING lines)."""
        return [p for p in self.problems if p.loud]

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "root": self.root,
            "task": self.task,
            "ok": self.ok,
            "class_names": self.class_names,
            "splits": {
                name: {
                    **{k: v for k, v in dataclasses.asdict(s).items() if k not in _COUNTERS},
                    "sizes": {f"{h}x{w}": n for (h, w), n in s.sizes.most_common()},
                    "image_kinds": dict(s.image_kinds.most_common()),
                    "mask_kinds": dict(s.mask_kinds.most_common()),
                    "mask_values": json_histogram(s.mask_values),
                }
                for name, s in self.splits.items()
            },
            "problems": [dataclasses.asdict(p) for p in self.problems],
        }


def check_data(
    cfg: ExperimentConfig, limit: int | None = None, num_workers: int | None = None
) -> CheckReport:
    """Check every split of ``cfg.data`` (the first ``limit`` items of each when given)."""

    lenient = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, on_error="skip"))
    raw, class_names = build_raw_splits(lenient, run_dir=None)
    task = task_of(raw[cfg.data.train_split])
    problems: list[Problem] = []
    seen: set[tuple[str, str, str]] = set()
    for split in raw.values():
        for base in base_datasets(split):
            for problem in base.problems:
                key = (problem.kind, problem.path, problem.message)
                if key not in seen:
                    seen.add(key)
                    problems.append(problem)
    workers = cfg.data.num_workers if num_workers is None else num_workers
    reports = {}
    good: dict[str, list[ItemSummary]] = {}
    num_classes = len(class_names)
    for name, split in raw.items():
        scan = scan_split(
            split,
            num_classes,
            cfg.data.ignore_index,
            read_images=True,
            num_workers=workers,
            limit=limit,
            desc=f"check {name}",
        )
        counts = [0] * num_classes
        present = [0] * num_classes
        ignored = 0
        sizes: Counter = Counter()
        for item in scan.good:
            sizes[item.size] += 1
            if item.class_pixels is not None:
                for c, n in enumerate(item.class_pixels):
                    counts[c] += n
                    present[c] += n > 0
                ignored += item.ignored_pixels
            elif item.label is not None:
                counts[item.label] += 1
            elif item.label_set is not None:  # multilabel: images carrying each label
                for c in item.label_set:
                    counts[c] += 1
        for item in scan.errors:
            problems.append(Problem(item.error_kind or "unreadable", item.path, item.error or ""))
        reports[name] = SplitReport(
            name,
            len(scan.items),
            len(scan.good),
            counts,
            present,
            ignored,
            sizes,
            Counter(i.image_kind for i in scan.good if i.image_kind is not None),
            Counter(i.mask_kind for i in scan.good if i.mask_kind is not None),
            stored_histogram(scan.good),
            sum(i.mask_resized for i in scan.good),
        )
        if reports[name].resized_masks:
            problems.append(resized_problem(name, reports[name].resized_masks))
        good[name] = scan.good
        problems += rare_kind_problems(name, scan.good)
        if not scan.items:
            problems.append(Problem("empty_split", name, f"split {name!r} has no items"))
        elif name == cfg.data.train_split:
            absent = [class_names[c] for c in range(num_classes) if counts[c] == 0]
            if absent and limit is None:
                problems.append(
                    Problem(
                        "absent_class",
                        name,
                        f"the training split has no {'pixels' if task == 'segmentation' else 'images'}"
                        f" of: {', '.join(absent)}",
                        "warning",
                    )
                )
    problems += duplicate_problems(good)
    decoder = next(
        (b.decoder for s in raw.values() for b in base_datasets(s) if _has_masks(b)), None
    )
    if decoder is not None:
        problems += mask_problems(
            [i for items in good.values() for i in items], decoder, num_classes
        )
    return CheckReport(
        cfg.data.format, cfg.data.root, task, class_names, reports, problems, limit is not None
    )


def resized_problem(split: str, count: int) -> Problem:
    """The warning that states how many masks ``data.resize_masks=nearest`` resized."""
    return Problem(
        "resized_masks",
        split,
        f"split {split!r}: {count} mask(s) are a uniform scale of their image and were "
        "resized to it by nearest neighbour (data.resize_masks=nearest)",
        "warning",
    )


def _has_masks(dataset: Any) -> bool:
    return isinstance(getattr(dataset, "decoder", None), MaskDecoder)
