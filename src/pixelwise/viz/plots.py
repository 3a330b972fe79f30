"""Training curves and confusion matrices as PNG files (matplotlib, no display).

The curves are drawn to be read in the report at their own size (1,100 px wide, the
report's width, legends at 10 pt): loss on a log axis when it spans more than a decade
(CamVid's first-epoch loss of 239 would flatten every later epoch), whole epochs on the
x axis, and each distinct series once (on balanced data accuracy, balanced accuracy and
macro F1 coincide: one line, whose legend names all three).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

from ..metrics import SCALAR_SUMMARY

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from .figures import save_figure  # noqa: E402

LEGEND_FONT_SIZE = 10
CURVES_SIZE = (11.0, 4.6)  # inches at 100 dpi: 1,100 px, the report's width
SAME = 1e-6  # series closer than this at every epoch are one line (no axis tells them apart)
MARKERS_UP_TO = 40  # epochs; beyond, markers would blur into the line


def series(
    records: Sequence[dict[str, Any]], keys: Sequence[str]
) -> list[tuple[list[str], list[float]]]:
    """``(keys, values)`` per distinct series: keys whose values agree to ``SAME`` at
    every epoch (missing ones too) are drawn once, under all their names."""
    groups: list[tuple[list[str], list[float]]] = []
    for key in keys:
        values = [float(r.get(key, math.nan)) for r in records]
        for names, shown in groups:
            if np.allclose(shown, values, rtol=0.0, atol=SAME, equal_nan=True):
                names.append(key)
                break
        else:
            groups.append(([key], values))
    return groups


def series_label(keys: Sequence[str]) -> str:
    """'train/accuracy', or 'train/accuracy = balanced_accuracy = macro_f1' for series
    that coincide (the shared 'train/' written once)."""
    first, rest = keys[0], keys[1:]
    prefix = first.rsplit("/", 1)[0] + "/" if "/" in first else ""
    same = bool(prefix) and all(k.startswith(prefix) for k in rest)
    return " = ".join([first, *(k[len(prefix) :] if same else k for k in rest)])


def spans_decades(values: Sequence[float], ratio: float = 10.0) -> bool:
    """Whether the positive finite values span more than ``ratio`` (a log axis shows them)."""
    shown = np.asarray([v for v in values if math.isfinite(v) and v > 0])
    return shown.size > 1 and shown.max() > ratio * shown.min()


def curves_figure(records: Sequence[dict[str, Any]], task: str | None = None) -> Figure:
    """Loss, the headline metrics and the learning rate per epoch, from ``metrics.jsonl``.

    The metrics panel draws the task's first three headline figures
    (``metrics.SCALAR_SUMMARY``); with no task, those of both tasks.
    """

    epochs = [r["epoch"] for r in records]
    scalar_keys = sorted({k for r in records for k, v in r.items() if isinstance(v, (int, float))})
    loss_keys = [k for k in scalar_keys if k.endswith("/loss")]
    tasks = [task] if task else list(SCALAR_SUMMARY)
    shown = {name for t in tasks for name in SCALAR_SUMMARY[t][:3]}
    metric_keys = [k for k in scalar_keys if "/" in k and k.split("/")[-1] in shown]
    lr_keys = [k for k in scalar_keys if k == "lr"]
    fig, axes = plt.subplots(1, 3, figsize=CURVES_SIZE, layout="constrained")
    marker = "o" if len(epochs) <= MARKERS_UP_TO else None
    for ax, keys, title in (
        (axes[0], loss_keys, "loss"),
        (axes[1], metric_keys, "metrics"),
        (axes[2], lr_keys, "learning rate"),
    ):
        groups = series(records, keys)
        for names, values in groups:
            ax.plot(epochs, values, marker=marker, markersize=3, label=series_label(names))
        if title == "loss" and spans_decades([v for _, values in groups for v in values]):
            ax.set_yscale("log")
            title = "loss (log scale)"
        ax.set_title(title, fontsize=12)
        ax.set_xlabel("epoch", fontsize=LEGEND_FONT_SIZE)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=9)
        ax.grid(alpha=0.3)
        if groups:
            ax.legend(
                fontsize=LEGEND_FONT_SIZE,
                loc="upper center",
                bbox_to_anchor=(0.5, -0.16),
                frameon=False,
            )
    return fig


def plot_curves(
    records: Sequence[dict[str, Any]], path: str | Path, task: str | None = None
) -> Path:
    """``curves_figure`` as a PNG, 1,100 px wide (the report shows it at its own size)."""
    return save_figure(curves_figure(records, task), path, dpi=100)


def plot_confusion_matrix(
    matrix: torch.Tensor | np.ndarray,
    class_names: Sequence[str],
    path: str | Path,
    normalize: bool = True,
    title: str = "confusion matrix",
) -> Path:
    """Rows are true classes, columns predictions; row-normalised (recall on the diagonal)."""
    path = Path(path)
    m = np.asarray(matrix, dtype=np.float64)
    shown = m / np.maximum(m.sum(axis=1, keepdims=True), 1) if normalize else m
    n = len(class_names)
    size = min(4 + 0.45 * n, 20)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    image = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(image, ax=ax, fraction=0.046)
    ax.set_xticks(range(n), class_names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), class_names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title + (" (row-normalised)" if normalize else ""))
    if n <= 20:
        for i in range(n):
            for j in range(n):
                value = shown[i, j]
                if value > 0:
                    text = f"{value:.2f}" if normalize else f"{int(value)}"
                    ax.text(
                        j,
                        i,
                        text,
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if value > 0.5 * shown.max() else "black",
                    )
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)
