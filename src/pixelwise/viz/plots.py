"""Training curves and confusion matrices as PNG files (matplotlib, no display)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402


def plot_curves(
    records: Sequence[dict[str, Any]], path: str | Path, task: str | None = None
) -> Path:
    """Loss, the headline metrics and the learning rate per epoch, from ``metrics.jsonl``.

    The metrics panel draws the task's first three headline figures
    (``metrics.SCALAR_SUMMARY``); with no task, those of both tasks.
    """
    from ..metrics import SCALAR_SUMMARY

    path = Path(path)
    epochs = [r["epoch"] for r in records]
    scalar_keys = sorted({k for r in records for k, v in r.items() if isinstance(v, (int, float))})
    loss_keys = [k for k in scalar_keys if k.endswith("/loss")]
    tasks = [task] if task else list(SCALAR_SUMMARY)
    shown = {name for t in tasks for name in SCALAR_SUMMARY[t][:3]}
    metric_keys = [k for k in scalar_keys if "/" in k and k.split("/")[-1] in shown]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, keys, title in (
        (axes[0], loss_keys, "loss"),
        (axes[1], metric_keys, "metrics"),
        (axes[2], ["lr"], "learning rate"),
    ):
        for key in keys:
            values = [r.get(key, np.nan) for r in records]
            ax.plot(epochs, values, marker="o", markersize=3, label=key)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if keys:
            ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


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
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
