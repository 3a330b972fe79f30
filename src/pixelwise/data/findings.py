"""Findings that break nothing but make figures wrong, from a scan's item summaries.

``pixelwise data check`` (and ``data stats`` for its split) reports them as warnings,
each with its fix:

* identical images (same hash of the decoded pixels) in two splits, which makes the
  held-out figures measure memory (loud), or twice in one split;
* mask files stored lossily (JPEG: compression invents values around every edge), and
  masks holding more distinct values than there are classes, with the histogram of the
  stored values; both together are loud;
* a file kind (format and mode) that is rare in its split: a lone palette GIF among
  hundreds of RGB JPEGs is usually a placeholder picture, not data.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from .base import Problem
from .masks import MaskDecoder
from .scan import ItemSummary

LOSSY_FORMATS = ("JPEG", "MPO")  # MPO: PIL's name for multi-picture JPEG files
SHOWN = 3  # examples named in one message


def duplicate_problems(splits: dict[str, list[ItemSummary]]) -> list[Problem]:
    """Identical images across splits (one loud problem) and within each split."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for split, items in splits.items():
        for item in items:
            if item.image_hash is not None:
                groups.setdefault(item.image_hash, []).append((split, item.path))
    across: Counter = Counter()  # (split of the copy, split of the original) -> copies
    across_first: tuple[str, str] | None = None
    within: dict[str, list[tuple[str, str]]] = {}
    for members in groups.values():
        if len(members) < 2:
            continue
        home, original = members[0]
        first_in: dict[str, str] = {}
        for split, path in members:
            if split not in first_in:
                first_in[split] = path
                if split != home:
                    across[(split, home)] += 1
                    across_first = across_first or (path, original)
            else:
                within.setdefault(split, []).append((path, first_in[split]))
    problems = []
    if across:
        assert across_first is not None
        counts = ", ".join(f"{n} of {copy} in {home}" for (copy, home), n in across.items())
        problems.append(
            Problem(
                "duplicates_across_splits",
                across_first[0],
                f"{sum(across.values())} image(s) are in more than one split ({counts}; "
                f"first: {across_first[0]} = {across_first[1]}): scores on the held-out "
                "split measure memory of training images, not generalisation; remove the "
                "copies (look for a folder link back into the dataset, or the same files "
                "under two split folders)",
                "warning",
                loud=True,
            )
        )
    for split, copies in within.items():
        path, original = copies[0]
        problems.append(
            Problem(
                "duplicates_within_split",
                path,
                f"split {split!r}: {len(copies)} image(s) are identical to another image of "
                f"the split (first: {path} = {original}); each copy counts again in the loss "
                "and the figures: remove the copies",
                "warning",
            )
        )
    return problems


def mask_problems(
    items: list[ItemSummary], decoder: MaskDecoder, num_classes: int
) -> list[Problem]:
    """Lossy mask files, and masks with more distinct stored values than classes."""
    masks = [i for i in items if i.mask_kind is not None]
    if not masks:
        return []
    stored = stored_histogram(masks)
    labelled = {v: n for v, n in stored.items() if isinstance(v, int) and not decoder.ignores(v)}
    problems = []
    too_many = len(labelled) > num_classes
    if too_many:
        over = [i for i in masks if _labelled_count(i, decoder) > num_classes] or masks
        stray = sum(sorted(labelled.values(), reverse=True)[num_classes:])
        problems.append(
            Problem(
                "too_many_values",
                _mask_path(over[0]),
                f"the masks store {len(labelled)} distinct values for {num_classes} classes: "
                f"{stray / sum(labelled.values()):.1%} of labelled pixels hold other values "
                f"than the {num_classes} most common ({len(over)} file(s), first: "
                f"{_mask_path(over[0])}; stored values: {histogram_text(stored)}); "
                + _values_fix(decoder),
                "warning",
            )
        )
    lossy = [i for i in masks if i.mask_kind.split()[0] in LOSSY_FORMATS]  # type: ignore[union-attr]
    if lossy:
        problems.append(
            Problem(
                "lossy_mask",
                _mask_path(lossy[0]),
                f"{len(lossy)} of {len(masks)} mask files are JPEG (first: "
                f"{_mask_path(lossy[0])}): lossy compression invents values around every "
                "edge"
                + (", and these masks hold more values than classes" if too_many else "")
                + "; export the masks again as PNG from the annotations",
                "warning",
                loud=too_many,
            )
        )
    return problems


def rare_kind_problems(split: str, items: list[ItemSummary]) -> list[Problem]:
    """Images of a kind (format and mode) that is at most 1% of its split."""
    kinds = Counter(i.image_kind for i in items if i.image_kind is not None)
    if len(kinds) < 2:
        return []
    total = sum(kinds.values())
    common = kinds.most_common(1)[0][0]
    problems = []
    for kind, count in kinds.items():
        if kind == common or count * 100 > total:
            continue
        which = "the only" if count == 1 else f"one of {count}"
        for item in [i for i in items if i.image_kind == kind][:SHOWN]:
            problems.append(
                Problem(
                    "rare_image_kind",
                    item.path,
                    f"{item.path}: {which} {kind} image(s) among {total} in split {split!r} "
                    f"(mostly {common}): often a placeholder picture ('image not available'), "
                    "not data; look at it and remove it if so",
                    "warning",
                )
            )
    return problems


def stored_histogram(items: list[ItemSummary]) -> Counter:
    """Pixels per stored mask value over ``items``."""
    total: Counter = Counter()
    for item in items:
        total.update(item.mask_values or {})
    return total


def histogram_text(histogram: Counter, shown: int = 8) -> str:
    """``0: 81.2%, 255: 17.1%, ... (61 values)``: the most common stored values."""
    total = sum(histogram.values()) or 1
    top = ", ".join(f"{_value_text(v)}: {n / total:.1%}" for v, n in histogram.most_common(shown))
    more = len(histogram) - shown
    return top + (f", ... ({len(histogram)} values)" if more > 0 else "")


def json_histogram(histogram: Counter) -> dict[str, int]:
    """Keys as text (``"255"``, colours ``"r,g,b"``), values first, then colours (a dataset
    may mix grayscale and RGB mask files)."""
    ordered = sorted(histogram.items(), key=lambda kv: (isinstance(kv[0], tuple), kv[0]))
    return {_value_text(v): n for v, n in ordered}


def _value_text(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def _labelled_count(item: ItemSummary, decoder: MaskDecoder) -> int:
    return sum(1 for v in (item.mask_values or {}) if isinstance(v, int) and not decoder.ignores(v))


def _mask_path(item: ItemSummary) -> str:
    return item.mask_path or item.path


def _values_fix(decoder: MaskDecoder) -> str:
    if decoder.mode != "binary":
        return "map the extra values with data.mask_ignore_values, or fix the masks"
    if decoder.threshold is not None:
        rule = f"values >= data.mask_threshold={decoder.threshold:g} count as foreground"
    else:
        rule = "values >= 128 count as foreground (the midpoint; data.mask_threshold sets another)"
    return f"binary masks: {rule}; store masks losslessly (PNG)"
