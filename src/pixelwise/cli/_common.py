"""Small pieces several commands share: checkpoint choice and figure tables.

Bundled config names are resolved by ``pixelwise.config.resolve_config``."""

from __future__ import annotations

import math
from typing import Any

from ..errors import UserError


def add_checkpoint_choice(parser: Any) -> None:
    """``--checkpoint best|last`` (stored as ``args.which``): which checkpoint of a run
    directory a command loads."""
    parser.add_argument(
        "--checkpoint",
        dest="which",
        default="best",
        choices=["best", "last", "ema", "averaged"],
        help="which checkpoint of a run directory",
    )


def format_figure(value: Any) -> str:
    if value is None:  # undefined figures are null in eval/<split>.json
        return "n/a"
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4f}"
    return str(value)


# Per-class columns: (heading, figure); a segmentation class's accuracy is its recall.
TABLE_COLUMNS = {
    "classification": [("precision", "precision"), ("recall", "recall"), ("f1", "f1")],
    "segmentation": [("iou", "iou"), ("dice", "dice"), ("accuracy", "recall")],
    "multilabel": [
        ("precision", "precision"),
        ("recall", "recall"),
        ("f1", "f1"),
        ("ap", "average_precision"),
    ],
    None: [(k, k) for k in ("precision", "recall", "f1", "iou", "dice")],
}


def figures_table(figures: dict[str, Any], class_names: list[str], task: str | None = None) -> str:
    """The task's headline scalars, then one row per class; absent classes named.

    ``task`` None shows every scalar and every per-class figure.
    """
    from ..metrics import SCALAR_SUMMARY, headline

    if task not in (None, *SCALAR_SUMMARY):
        raise UserError(f"task must be classification, segmentation or multilabel, got {task!r}")
    if task is None:
        scalars = {k: v for k, v in figures.items() if isinstance(v, (int, float))}
    else:
        scalars = headline(figures, task)
    width = max((len(k) for k in scalars), default=10)
    lines = [f"  {key:<{width}}  {format_figure(value)}" for key, value in scalars.items()]

    columns = [(h, k) for h, k in TABLE_COLUMNS[task] if isinstance(figures.get(k), list)]
    if isinstance(figures.get("support"), list):
        columns.append(("support", "support"))
    if columns:
        count = max(len(figures[k]) for _, k in columns)
        names = [class_names[i] if i < len(class_names) else str(i) for i in range(count)]
        heading = "label" if task == "multilabel" else "class"
        name_width = max(len(heading), *(len(n) for n in names))
        header = f"  {heading:<{name_width}}  " + "  ".join(f"{h:>9}" for h, _ in columns)
        lines += ["", header, "  " + "-" * (len(header) - 2)]
        for i, name in enumerate(names):
            row = "  ".join(f"{format_figure(figures[k][i]):>9}" for _, k in columns)
            lines.append(f"  {name:<{name_width}}  {row}")
        absent = figures.get("absent_classes") or []
        if absent:
            lines.append(
                "  absent from ground truth and predictions (n/a, left out of every mean): "
                + ", ".join(names[i] for i in absent)
            )
    return "\n".join(lines)
