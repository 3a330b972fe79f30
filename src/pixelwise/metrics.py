"""Every reported figure from one dataset-level confusion matrix.

``matrix[t, p]`` counts samples (or pixels) of true class ``t`` predicted as ``p``,
accumulated over the whole split; targets equal to ``ignore_index`` are skipped.
Figures are computed from the matrix once, at the end: never averaged over batches
or images. A ratio whose denominator is 0 is undefined (NaN) and left out of every
mean; a class absent from both ground truth and predictions is NaN in every
per-class list and named in ``absent_classes``. Formulas: ``docs/metrics.md``.

The matrix stays on the device of the inputs and ``update`` never waits for the
GPU: counting uses ``torch.histc`` on CUDA (its range is given, whereas
``torch.bincount`` reads the maximum back to the host), and invalid targets are
counted on the device and reported by ``compute``. On CPU, ``bincount`` is used and
invalid targets raise at once.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import torch

from .collectives import sum_over_processes
from .errors import UserError

Figures = dict[str, Any]


class ConfusionMatrix:
    """An int64 (C, C) matrix, rows true classes, columns predictions; ``compute()``
    gives every figure.

    ``update(preds, target)`` takes class indices shaped like ``target`` ((N,) or
    (N, H, W)) or logits with the class dimension at position 1 ((N, C) or
    (N, C, H, W)); (N, C) logits also count top-``topk`` hits.
    """

    def __init__(self, num_classes: int, ignore_index: int | None = 255, topk: int = 5) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if topk < 1:
            raise ValueError(f"topk must be >= 1, got {topk}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.topk = topk
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)
        self._topk_counts = torch.zeros(2, dtype=torch.int64)  # hits, samples
        self._invalid = torch.zeros((), dtype=torch.int64)  # targets or preds out of range

    # ----------------------------------------------------------------------- accumulating
    def reset(self) -> None:
        self.matrix.zero_()
        self._topk_counts.zero_()
        self._invalid.zero_()

    @property
    def device(self) -> torch.device:
        return self.matrix.device

    def to(self, device: torch.device | str) -> ConfusionMatrix:
        """Move the counts (``update`` does this itself, following its inputs)."""
        self.matrix = self.matrix.to(device)
        self._topk_counts = self._topk_counts.to(device)
        self._invalid = self._invalid.to(device)
        return self

    @torch.no_grad()
    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch: class indices, or logits with the class dimension at position 1."""
        c = self.num_classes
        from_logits = preds.dim() == target.dim() + 1
        if from_logits:
            if preds.shape[1] != c:
                raise ValueError(
                    f"logits have {preds.shape[1]} classes in dimension 1, expected {c}"
                )
            if preds.dim() == 2 and self.topk < c:
                self._update_topk(preds, target)
            preds = preds.argmax(dim=1)
        if preds.shape != target.shape:
            raise ValueError(
                f"preds {tuple(preds.shape)} and target {tuple(target.shape)} differ in shape; "
                "pass class indices shaped like the target or logits (N, C[, H, W])"
            )
        if self.matrix.device != target.device:
            self.to(target.device)
        t = target.reshape(-1).long()
        p = preds.reshape(-1).to(t.device).long()
        ignored = t == self.ignore_index if self.ignore_index is not None else None
        check_preds = not from_logits  # argmax is always a valid class
        if t.is_cuda:
            counts, invalid = _count_on_device(t, p, ignored, check_preds, c)
            self._invalid += invalid
        else:
            counts = _count_on_host(t, p, ignored, check_preds, c)
            if counts is None:
                self._raise_invalid(t, p)
        self.matrix += counts.view(c, c)

    def _update_topk(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        t = target.long()
        hits = (logits.topk(self.topk, dim=1).indices == t.unsqueeze(1)).any(dim=1)
        if self.ignore_index is not None:
            keep = t != self.ignore_index
            hits &= keep
            seen = keep.sum()
        else:
            seen = torch.full((), t.numel(), dtype=torch.int64, device=t.device)
        self._topk_counts = self._topk_counts.to(t.device)
        self._topk_counts += torch.stack([hits.sum(), seen])

    def _raise_invalid(self, t: torch.Tensor | None = None, p: torch.Tensor | None = None):
        c, ignore = self.num_classes, self.ignore_index
        count, detail = int(self._invalid), ""
        if t is not None and p is not None:
            kept = t != ignore if ignore is not None else torch.ones_like(t, dtype=torch.bool)
            bad_t = t[kept & ((t < 0) | (t >= c))]
            bad_p = p[kept & ((p < 0) | (p >= c))]
            count = bad_t.numel() + bad_p.numel()
            detail = (
                f" (targets {bad_t.unique()[:5].tolist()}, "
                f"predictions {bad_p.unique()[:5].tolist()})"
            )
        raise UserError(
            f"{count} values outside the classes [0, {c}) that are not "
            f"ignore_index={ignore}{detail}: check data.num_classes and data.ignore_index"
        )

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add another matrix's counts (another split, shard or process)."""
        if other.num_classes != self.num_classes:
            raise ValueError(
                f"cannot merge a {other.num_classes}-class matrix into a "
                f"{self.num_classes}-class one"
            )
        self.matrix += other.matrix.to(self.device)
        self._topk_counts += other._topk_counts.to(self.device)
        self._invalid += other._invalid.to(self.device)
        return self

    def all_reduce(self, group: Any = None) -> ConfusionMatrix:
        """Sum the counts over all processes (no-op unless torch.distributed is set up).

        Each process must hold only its own samples: a ``DistributedSampler`` pads
        the dataset with repeated samples, which would then count twice; evaluate
        with ``engine.distributed.ShardSampler`` instead.
        """
        packed = torch.cat([self.matrix.flatten(), self._topk_counts, self._invalid.view(1)])
        packed = sum_over_processes(packed, group)
        c2 = self.num_classes**2
        self.matrix = packed[:c2].view(self.num_classes, self.num_classes).clone()
        self._topk_counts = packed[c2 : c2 + 2].clone()
        self._invalid = packed[c2 + 2].clone()
        return self

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The counts (``matrix``, ``topk_counts`` = hits and samples, ``invalid``): all
        sums, so the counts of several shards add up key by key. Adapters that keep the
        counts as their own state (``pixelwise.integrations.torchmetrics``) read them here."""
        return {"matrix": self.matrix, "topk_counts": self._topk_counts, "invalid": self._invalid}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> ConfusionMatrix:
        """Take counts shaped as ``state_dict`` gives them (copies, on their own device)."""
        c = self.num_classes
        if tuple(state["matrix"].shape) != (c, c):
            raise ValueError(
                f"a {tuple(state['matrix'].shape)} matrix does not fit a {c}-class one"
            )
        self.matrix = state["matrix"].detach().clone().long()
        self._topk_counts = state["topk_counts"].detach().to(self.device).clone().long()
        self._invalid = state["invalid"].detach().to(self.device).clone().long().reshape(())
        return self

    # ----------------------------------------------------------------------- figures
    def compute(self, task: str | None = None) -> Figures:
        """The figures of ``task`` (``figures_for_task``), or with no task every figure,
        with stable names (formulas in ``docs/metrics.md``).

        Scalars: ``accuracy`` (= ``pixel_accuracy``), ``top{k}_accuracy`` (where fed
        (N, C) logits with more than k classes), ``balanced_accuracy`` (=
        ``mean_class_accuracy`` = ``macro_recall``), ``macro_precision``, ``macro_f1``
        (= ``mean_dice``), ``miou``, ``fwiou``, ``weighted_precision``,
        ``weighted_recall``, ``weighted_f1``. Per class: ``precision``, ``recall``,
        ``f1``, ``dice``, ``iou`` (NaN where undefined), ``support``; and
        ``absent_classes``.
        """
        if int(self._invalid) > 0:
            self._raise_invalid()
        figures = figures_from_matrix(self.matrix, self._topk_counts, self.topk)
        return figures if task is None else figures_for_task(figures, task)


@functools.cache
def histc_counts_int64_on_cuda() -> bool:
    """Whether this build's ``torch.histc`` takes int64 CUDA tensors (probed once)."""
    try:
        torch.histc(torch.zeros(1, dtype=torch.int64, device="cuda"), bins=2, min=0, max=2)
    except (RuntimeError, NotImplementedError):
        return False
    return True


def count_values(index: torch.Tensor, bins: int) -> torch.Tensor:
    """How often each value in ``[0, bins)`` occurs in an int64 tensor; others are dropped.

    CUDA: ``histc`` with ``bins + 1`` bins over ``[0, bins + 1]``, so value ``v`` falls
    in bin ``v`` exactly and the extra bin (which also takes ``bins + 1``: histc's last
    bin is closed) is cut off. Its range is given, so nothing is read back to the host,
    unlike ``bincount``, which reads the maximum to size its output. CPU (and CUDA under
    ``torch.use_deterministic_algorithms``): ``bincount``, out-of-range values sent to an
    extra bin.
    """
    if (
        index.is_cuda
        and not torch.are_deterministic_algorithms_enabled()
        and histc_counts_int64_on_cuda()
    ):
        return torch.histc(index, bins=bins + 1, min=0, max=bins + 1)[:bins]
    in_range = (index >= 0) & (index < bins)
    return torch.bincount(torch.where(in_range, index, bins), minlength=bins + 1)[:bins]


def _count_on_host(
    t: torch.Tensor, p: torch.Tensor, ignored: torch.Tensor | None, check_preds: bool, c: int
) -> torch.Tensor | None:
    """Counts of the C*C cells, or None if a value is invalid (CPU, where checks are free).

    Each pixel's cell is ``t * C + p``; ignored pixels go to an extra cell ``C*C``.
    With valid predictions, a target outside ``[0, C)`` makes its index negative
    (``bincount`` refuses it), larger than ``C*C`` (the output grows) or exactly ``C*C``
    (the extra cell then holds more than the ignored pixels). Few passes and one large
    temporary: on a loaded machine, allocating memory is what costs.
    """
    if check_preds and p.numel():
        low, high = p.aminmax()
        if low < 0 or high >= c:  # predictions at ignored places may be anything
            p = p if ignored is None else p.masked_fill(ignored, 0)
            low, high = p.aminmax()
            if low < 0 or high >= c:
                return None
    index = p.add(t, alpha=c)
    dump = c * c
    num_ignored = 0
    if ignored is not None:
        index.masked_fill_(ignored, dump)
        num_ignored = int(ignored.sum())
    try:
        counts = torch.bincount(index, minlength=dump + 1)
    except RuntimeError:  # a negative index: a target below 0
        return None
    if counts.numel() > dump + 1 or int(counts[dump]) != num_ignored:
        return None
    return counts[:dump]


def _count_on_device(
    t: torch.Tensor, p: torch.Tensor, ignored: torch.Tensor | None, check_preds: bool, c: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Counts of the C*C cells and how many values were invalid, without a host sync.

    Ignored pixels and invalid predictions get the index -1, which ``count_values``
    drops; an invalid target with a valid prediction falls outside ``[0, C*C)`` and is
    dropped too, so ``invalid = kept - counted``.
    """
    index = p.add(t, alpha=c)
    if check_preds:
        index.masked_fill_((p < 0) | (p >= c), -1)
    kept: torch.Tensor | int = index.numel()
    if ignored is not None:
        index.masked_fill_(ignored, -1)
        kept = index.numel() - ignored.sum()
    counts = count_values(index, c * c)
    return counts, kept - counts.sum()


def figures_from_matrix(
    matrix: torch.Tensor, topk_counts: torch.Tensor | None = None, topk: int = 5
) -> Figures:
    """The figures of a (C, C) confusion matrix (rows true, columns predicted)."""
    m = matrix.detach().to("cpu", torch.float64)
    num_classes = m.shape[0]
    total = m.sum()
    tp = m.diag()
    support = m.sum(dim=1)  # ground-truth count per class
    predicted = m.sum(dim=0)
    present = (support + predicted) > 0

    precision = _ratio(tp, predicted)
    recall = _ratio(tp, support)
    iou = _ratio(tp, support + predicted - tp)
    dice = _ratio(2 * tp, support + predicted)  # = F1 = 2PR / (P + R)
    accuracy = float(tp.sum() / total) if total > 0 else math.nan
    fwiou = float((support * iou.nan_to_num(0.0)).sum() / total) if total > 0 else math.nan

    figures: Figures = {
        "accuracy": accuracy,
        "pixel_accuracy": accuracy,
        "balanced_accuracy": _nanmean(recall),
        "mean_class_accuracy": _nanmean(recall),
        "macro_precision": _nanmean(precision),
        "macro_recall": _nanmean(recall),
        "macro_f1": _nanmean(dice),
        "weighted_precision": _nanaverage(precision, support),
        "weighted_recall": _nanaverage(recall, support),
        "weighted_f1": _nanaverage(dice, support),
        "miou": _nanmean(iou),
        "fwiou": fwiou,
        "mean_dice": _nanmean(dice),
    }
    if topk_counts is not None:
        hits, seen = (int(v) for v in topk_counts.cpu())
        if seen > 0:
            figures[f"top{topk}_accuracy"] = hits / seen
    figures.update(
        {
            "precision": precision.tolist(),
            "recall": recall.tolist(),
            "f1": dice.tolist(),
            "iou": iou.tolist(),
            "dice": dice.tolist(),
            "support": support.long().tolist(),
            "absent_classes": [i for i in range(num_classes) if not present[i]],
        }
    )
    return figures


def _ratio(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """``numerator / denominator``, NaN where the denominator is 0 (undefined)."""
    return torch.where(denominator > 0, numerator / denominator.clamp(min=1), math.nan)


def _nanmean(values: torch.Tensor) -> float:
    defined = values[~values.isnan()]
    return float(defined.mean()) if defined.numel() else math.nan


def _nanaverage(values: torch.Tensor, weights: torch.Tensor) -> float:
    """Weighted mean of the defined values (weights renormalised over them)."""
    defined = ~values.isnan()
    total = weights[defined].sum()
    return float((values[defined] * weights[defined]).sum() / total) if total > 0 else math.nan


SCALAR_SUMMARY = {
    "classification": [
        "accuracy",
        "balanced_accuracy",
        "macro_f1",
        "macro_precision",
        "macro_recall",
        "weighted_precision",
        "weighted_recall",
        "weighted_f1",
    ],
    "segmentation": ["pixel_accuracy", "miou", "fwiou", "mean_class_accuracy", "mean_dice"],
    "multilabel": ["map", "macro_f1", "macro_precision", "macro_recall", "threshold"],
}
"""The headline scalars of each task, most important first (curves draw the first three)."""

PER_CLASS_FIGURES = {
    "classification": ["precision", "recall", "f1", "support"],
    "segmentation": ["iou", "dice", "precision", "recall", "support"],
    "multilabel": ["average_precision", "precision", "recall", "f1", "support"],
}
"""The per-class lists each task reports (``absent_classes`` too, for both)."""


def is_topk_accuracy(name: str) -> bool:
    """``top5_accuracy`` and the like: classification's top-k hits."""
    return name.startswith("top") and name.endswith("_accuracy") and name[3:-9].isdigit()


def figures_for_task(figures: Figures, task: str) -> Figures:
    """The figures ``task`` reports, in their order in ``figures``: its scalars
    (``SCALAR_SUMMARY``, top-k accuracies for classification), its per-class lists
    (``PER_CLASS_FIGURES``), ``absent_classes`` and a ``loss``. A classifier reports no
    ``miou`` or ``pixel_accuracy`` and a segmenter no ``macro_f1``: the aliases name
    the same numbers in each field's words, and each field reads its own."""
    if task not in SCALAR_SUMMARY:
        raise ValueError(f"unknown task {task!r}; tasks are: {', '.join(SCALAR_SUMMARY)}")
    kept = {"loss", "absent_classes", *SCALAR_SUMMARY[task], *PER_CLASS_FIGURES[task]}
    topk = task == "classification"
    return {k: v for k, v in figures.items() if k in kept or (topk and is_topk_accuracy(k))}


def headline(figures: dict[str, Any], task: str) -> dict[str, float | None]:
    """The task's headline scalars of ``figures`` in table order: the loss first where
    present, and for classification every top-k accuracy right after accuracy."""
    order = ["loss", *SCALAR_SUMMARY[task]]
    if task == "classification":
        topk = sorted(k for k in figures if is_topk_accuracy(k))
        order[2:2] = topk
    return {k: figures[k] for k in order if k in figures and not isinstance(figures[k], list)}


def prediction_coverage(
    matrix: torch.Tensor, class_names: list[str] | None = None, weighted: bool = False
) -> str | None:
    """A sentence when the predictions cover less than the targets do, else None.

    A model that predicts a single class, or never predicts a class the targets hold,
    can still score a high accuracy (91% pixel accuracy with a foreground IoU of 0 on
    thin structures); such figures mean little, and this says so. ``weighted``: the
    loss already weighs classes, so the remedy named is stronger weights.
    """
    m = matrix.detach().cpu()
    support, predicted = m.sum(dim=1), m.sum(dim=0)
    names = class_names or [str(i) for i in range(m.shape[0])]
    if int(support.sum()) == 0:
        return None
    never = [names[i] for i in range(m.shape[0]) if support[i] > 0 and predicted[i] == 0]
    if not never:
        return None
    used = [names[i] for i in range(m.shape[0]) if predicted[i] > 0]
    if len(used) == 1:
        what = f"every prediction is class '{used[0]}'"
    else:
        what = f"classes present in the targets are never predicted: {', '.join(never[:8])}"
    weights = (
        "stronger class weights (data.class_weight_power nearer 1, or a data.class_weights list)"
        if weighted
        else "class weights (data.class_weights=median_frequency)"
    )
    return (
        f"{what}, so accuracy-like figures mean little; remedies: {weights}, a Dice or focal loss "
        "(loss.terms=[{name: cross_entropy}, {name: dice}] or [{name: focal}]), or more epochs"
    )


# --------------------------------------------------------------------------- multi-label
THRESHOLD_GRID = torch.linspace(0.01, 0.99, 99)
"""Decision thresholds tried when one is chosen (``MultiLabelMetrics.compute``)."""


class MultiLabelMetrics:
    """Figures of multi-label classification: each image carries any number of labels,
    each label a yes/no decision on its sigmoid score.

    ``update(logits, target)`` keeps the (N, C) sigmoid scores and the multi-hot
    targets on the host (a validation set's scores are small next to its images):
    average precision needs every score, not counts at one threshold. ``compute`` gives,
    per label, TP/FP/FN-based precision, recall and F1 at the threshold and
    scikit-learn's ``average_precision_score`` (no interpolation); ``map`` is their mean
    over labels with a positive example. ``threshold=None`` chooses the threshold (one
    for all labels, of ``THRESHOLD_GRID``) that maximises macro F1 on these scores,
    which is how validation picks the threshold the model card keeps. Not summed over
    processes: ``all_reduce`` refuses (multi-label under torch.distributed is not done).
    """

    def __init__(self, num_classes: int, threshold: float | None = 0.5) -> None:
        self.num_classes = num_classes
        self.threshold = threshold
        self._scores: list[torch.Tensor] = []
        self._targets: list[torch.Tensor] = []

    def to(self, device: torch.device | str) -> MultiLabelMetrics:
        return self  # scores are kept on the host

    def reset(self) -> None:
        self._scores, self._targets = [], []

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch of (N, C) logits and (N, C) multi-hot targets."""
        if logits.shape != target.shape or logits.dim() != 2:
            raise ValueError(
                f"multi-label logits {tuple(logits.shape)} and targets {tuple(target.shape)} "
                "must both be (N, C)"
            )
        self._scores.append(torch.sigmoid(logits.detach().float()).cpu())
        self._targets.append(target.detach().cpu().long())

    def all_reduce(self, group: Any = None) -> MultiLabelMetrics:
        raise UserError("task: multilabel does not train under torch.distributed yet")

    def scores_and_targets(self) -> tuple[torch.Tensor, torch.Tensor]:
        if not self._scores:
            empty = torch.zeros(0, self.num_classes)
            return empty, empty.long()
        return torch.cat(self._scores), torch.cat(self._targets)

    def compute(self, task: str | None = None) -> Figures:
        """Figures at the threshold given at construction or, when it is None, at the
        threshold of best macro F1 on these scores; either is reported as ``threshold``.
        ``task`` is accepted for the ``ConfusionMatrix`` interface."""
        scores, targets = self.scores_and_targets()
        threshold = self.threshold
        if threshold is None:
            threshold = best_threshold(scores, targets)
        counts = _label_counts(scores, targets, threshold)
        precision = _ratio(counts["tp"], counts["tp"] + counts["fp"])
        recall = _ratio(counts["tp"], counts["tp"] + counts["fn"])
        f1 = _ratio(2 * counts["tp"], 2 * counts["tp"] + counts["fp"] + counts["fn"])
        ap = average_precision(scores, targets)
        return {
            "map": _nanmean(ap),
            "macro_f1": _nanmean(f1),
            "macro_precision": _nanmean(precision),
            "macro_recall": _nanmean(recall),
            "threshold": float(threshold),
            "average_precision": ap.tolist(),
            "precision": precision.tolist(),
            "recall": recall.tolist(),
            "f1": f1.tolist(),
            "support": targets.sum(dim=0).tolist(),
        }


def _label_counts(
    scores: torch.Tensor, targets: torch.Tensor, threshold: float
) -> dict[str, torch.Tensor]:
    """Per-label TP, FP and FN (float64) of the decisions ``score >= threshold``."""
    predicted = scores >= threshold
    positive = targets.bool()
    return {
        "tp": (predicted & positive).sum(dim=0).double(),
        "fp": (predicted & ~positive).sum(dim=0).double(),
        "fn": (~predicted & positive).sum(dim=0).double(),
    }


def best_threshold(scores: torch.Tensor, targets: torch.Tensor) -> float:
    """The threshold of ``THRESHOLD_GRID`` with the highest macro F1 (the lowest of ties);
    0.5 without scores."""
    if not len(scores):
        return 0.5
    best, best_f1 = 0.5, -1.0
    for threshold in THRESHOLD_GRID.tolist():
        counts = _label_counts(scores, targets, threshold)
        f1 = _nanmean(_ratio(2 * counts["tp"], 2 * counts["tp"] + counts["fp"] + counts["fn"]))
        if not math.isnan(f1) and f1 > best_f1 + 1e-12:
            best, best_f1 = threshold, f1
    return round(best, 2)


def average_precision(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-label average precision as scikit-learn's ``average_precision_score``
    (sum over thresholds of precision x recall increase); NaN for a label without a
    positive example."""
    from sklearn.metrics import average_precision_score  # heavy import, only when used

    values = []
    for c in range(scores.shape[1]):
        column = targets[:, c].numpy()
        if column.sum() == 0:
            values.append(math.nan)
        else:
            values.append(float(average_precision_score(column, scores[:, c].numpy())))
    return torch.tensor(values, dtype=torch.float64)
