"""Every reported figure from one dataset-level confusion matrix.

``matrix[t, p]`` counts samples (or pixels) of true class ``t`` predicted as ``p``,
accumulated over the whole split with one ``bincount`` per batch; targets equal to
``ignore_index`` are skipped. Figures are computed from the matrix at the end, never
averaged over batches or images. Formulas: ``docs/metrics.md``.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist


class ConfusionMatrix:
    """Accumulates an int64 (C, C) matrix; ``compute()`` gives every figure."""

    def __init__(self, num_classes: int, ignore_index: int | None = 255, topk: int = 5) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.topk = topk
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)
        self.topk_correct = 0  # only counted when fed logits of (N, C) shape
        self.topk_total = 0

    def reset(self) -> None:
        self.matrix.zero_()
        self.topk_correct = 0
        self.topk_total = 0

    @torch.no_grad()
    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch. ``preds``: class indices shaped like ``target``, or logits with a
        class dimension at position 1: (N, C) for (N,) targets, (N, C, H, W) for (N, H, W)."""
        if preds.dim() == target.dim() + 1:
            if preds.dim() == 2 and self.topk < preds.shape[1]:
                self._update_topk(preds, target)
            preds = preds.argmax(dim=1)
        if preds.shape != target.shape:
            raise ValueError(
                f"preds {tuple(preds.shape)} and target {tuple(target.shape)} differ in shape"
            )
        preds = preds.reshape(-1).long()
        target = target.reshape(-1).long()
        keep = target != self.ignore_index if self.ignore_index is not None else None
        if keep is not None:
            preds, target = preds[keep], target[keep]
        if target.numel() and (target.min() < 0 or target.max() >= self.num_classes):
            bad = target[(target < 0) | (target >= self.num_classes)].unique()[:5].tolist()
            raise ValueError(
                f"target values {bad} outside [0, {self.num_classes}) and not ignore_index={self.ignore_index}"
            )
        counts = torch.bincount(target * self.num_classes + preds, minlength=self.num_classes**2)
        self.matrix += (
            counts.reshape(self.num_classes, self.num_classes)
            .to(self.matrix.device, torch.int64)
            .cpu()
        )

    def _update_topk(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        keep = (
            target != self.ignore_index
            if self.ignore_index is not None
            else torch.ones_like(target, dtype=torch.bool)
        )
        top = logits[keep].topk(self.topk, dim=1).indices
        self.topk_correct += int((top == target[keep].unsqueeze(1)).any(dim=1).sum())
        self.topk_total += int(keep.sum())

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        if other.num_classes != self.num_classes:
            raise ValueError(
                f"cannot merge {other.num_classes}-class into {self.num_classes}-class matrix"
            )
        self.matrix += other.matrix
        self.topk_correct += other.topk_correct
        self.topk_total += other.topk_total
        return self

    def all_reduce(self) -> None:
        """Sum over processes (each must hold only its own, unduplicated samples)."""
        if not (dist.is_available() and dist.is_initialized()):
            return
        backend = dist.get_backend()
        device = (
            torch.device("cuda", torch.cuda.current_device())
            if backend == "nccl"
            else torch.device("cpu")
        )
        packed = torch.cat(
            [self.matrix.flatten(), torch.tensor([self.topk_correct, self.topk_total])]
        ).to(device)
        dist.all_reduce(packed)
        packed = packed.cpu()
        self.matrix = packed[:-2].reshape(self.num_classes, self.num_classes).clone()
        self.topk_correct, self.topk_total = int(packed[-2]), int(packed[-1])

    def compute(self) -> dict[str, float | list[float]]:
        """Every figure, with stable names; per-class lists hold NaN for absent classes."""
        m = self.matrix.double()
        total = m.sum()
        tp = m.diag()
        support = m.sum(dim=1)  # true count per class
        predicted = m.sum(dim=0)
        present = (support + predicted) > 0  # in ground truth or prediction
        nan = torch.tensor(float("nan"), dtype=torch.float64)

        def ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
            return torch.where(den > 0, num / den.clamp(min=1), nan)

        recall = ratio(tp, support)
        precision = ratio(tp, predicted)
        iou = ratio(tp, support + predicted - tp)
        dice = ratio(2 * tp, support + predicted)
        # F1 is the Dice coefficient; a class present only in predictions has F1 0.
        f1 = dice
        accuracy = float(tp.sum() / total) if total > 0 else float("nan")
        freq = support / total if total > 0 else support
        out: dict[str, float | list[float]] = {
            "accuracy": accuracy,
            "pixel_accuracy": accuracy,
            "balanced_accuracy": _nanmean(recall),
            "mean_class_accuracy": _nanmean(recall),
            "macro_precision": _nanmean(precision[present].nan_to_num(0.0))
            if present.any()
            else float("nan"),
            "macro_recall": _nanmean(recall),
            "macro_f1": _nanmean(f1),
            "weighted_f1": float((freq * f1.nan_to_num(0.0)).sum()) if total > 0 else float("nan"),
            "miou": _nanmean(iou),
            "fwiou": float((freq * iou.nan_to_num(0.0)).sum()) if total > 0 else float("nan"),
            "mean_dice": _nanmean(dice),
            "iou": iou.tolist(),
            "precision": precision.tolist(),
            "recall": recall.tolist(),
            "f1": f1.tolist(),
            "dice": dice.tolist(),
            "support": support.long().tolist(),
            "absent_classes": [i for i in range(self.num_classes) if not present[i]],
        }
        if self.topk_total:
            out[f"top{self.topk}_accuracy"] = self.topk_correct / self.topk_total
        return out


def _nanmean(values: torch.Tensor) -> float:
    finite = values[~values.isnan()]
    return float(finite.mean()) if finite.numel() else math.nan


SCALAR_SUMMARY = {
    "classification": ["accuracy", "balanced_accuracy", "macro_f1"],
    "segmentation": ["pixel_accuracy", "mean_class_accuracy", "miou", "fwiou", "mean_dice"],
}
