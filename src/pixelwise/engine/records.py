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
    tail = f" lr={record['lr']:.3g}" + (f" {speed:.0f} img/s" if speed else "")
    return f"epoch {record['epoch']}: " + " ".join(parts) + tail
