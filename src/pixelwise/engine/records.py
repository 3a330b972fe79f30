"""What a run says about each epoch on the console; ``metrics.jsonl``
(``RunDir.append_metrics``) and the loggers (``engine/loggers.py``: TensorBoard, CSV,
MLflow) keep the record itself.

An epoch's record holds ``epoch``, ``lr`` (the base learning rate of the epoch's first
step; a group's rate is ``lr * lr_mult``), ``lr_end``, every ``train/`` figure, and every
``val/`` (and ``val_ema/``) figure where validation ran.
"""

from __future__ import annotations

from typing import Any


def epoch_line(record: dict[str, Any], task: str) -> str:
    """One console line per epoch: losses, the headline figures, lr and throughput."""
    headline = ["accuracy", "top5_accuracy"] if task == "classification" else ["miou"]
    keys = ["train/loss", "val/loss"] + [f"{p}/{k}" for p in ("val", "val_ema") for k in headline]
    parts = [f"{k}={record[k]:.4f}" for k in keys if isinstance(record.get(k), float)]
    speed = record.get("train/images_per_second")
    tail = f" lr={record['lr']:.3g}" + (f" {format_rate(speed)}" if speed else "")
    return f"epoch {record['epoch']}: " + " ".join(parts) + tail


def format_rate(images_per_second: float) -> str:
    """``1234 img/s``, ``12.3 img/s``, ``0.25 img/s (4 s/img)``: a slow model on a CPU
    (a segmentation net at full size) must not read ``0 img/s``, which looks like a hang."""
    rate = images_per_second
    if not rate > 0:
        return "0 img/s"
    if rate >= 100:
        return f"{rate:.0f} img/s"
    if rate >= 1:
        return f"{rate:.3g} img/s"
    return f"{rate:.2g} img/s ({1 / rate:.3g} s/img)"
