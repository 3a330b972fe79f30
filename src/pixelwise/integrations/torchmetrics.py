"""``pixelwise.metrics.ConfusionMatrix`` as a ``torchmetrics.Metric`` (needs torchmetrics).

The metric's states are the confusion matrix's counts (``ConfusionMatrix.state_dict``):
the (C, C) matrix, the top-k hits and samples, and the invalid-value count, each with
``dist_reduce_fx="sum"``. Summing counts over processes is exact, so the figures after
torchmetrics' sync are those of one matrix over every sample, never a mean of per-process
figures. ``update`` and ``compute`` go through ``ConfusionMatrix`` itself, so the figures
are today's, formula for formula (``docs/metrics.md``).

Lightning logs a metric whose ``compute`` returns one tensor: give ``figure`` ("miou",
"accuracy", ...) for that. Without it ``compute`` returns every figure, as
``ConfusionMatrix.compute`` does. ``confusion_metrics`` builds several figures over one
count (a ``MetricCollection`` whose compute group shares the states).

As with ``ConfusionMatrix.all_reduce``, each process must see only its own samples: a
``DistributedSampler`` pads the last batch with repeated samples, which count twice.
"""

from __future__ import annotations

from typing import Any

import torch
from torchmetrics import Metric, MetricCollection

from ..errors import UserError
from ..metrics import ConfusionMatrix, figures_from_matrix

__all__ = ["ConfusionMatrixMetric", "confusion_metrics", "scalar_figures"]


def scalar_figures(num_classes: int, topk: int = 5) -> list[str]:
    """The names ``figure`` may take: every scalar ``ConfusionMatrix.compute`` gives."""
    empty = figures_from_matrix(torch.zeros(num_classes, num_classes, dtype=torch.int64))
    names = [name for name, value in empty.items() if not isinstance(value, list)]
    return [*names, f"top{topk}_accuracy"]


class ConfusionMatrixMetric(Metric):
    """A dataset-level confusion matrix with torchmetrics' sync, reset and device moves.

    ``update(preds, target)`` takes what ``ConfusionMatrix.update`` takes: class indices
    shaped like the target, or logits with the class dimension at position 1.
    ``compute()`` gives the ``figure`` as a 0-d float tensor, or when ``figure`` is None
    the dict ``ConfusionMatrix.compute(task)`` gives (every figure where ``task`` is None;
    the task's own, as the loop logs them, for "classification" or "segmentation").
    Extra keyword arguments go to ``torchmetrics.Metric``.
    """

    is_differentiable = False
    higher_is_better = True  # every scalar figure is a score
    full_state_update = False

    matrix: torch.Tensor
    topk_counts: torch.Tensor
    invalid: torch.Tensor

    def __init__(
        self,
        num_classes: int,
        ignore_index: int | None = 255,
        topk: int = 5,
        figure: str | None = None,
        task: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        counts = ConfusionMatrix(num_classes, ignore_index, topk).state_dict()
        if figure is not None and figure not in scalar_figures(num_classes, topk):
            raise UserError(
                f"figure={figure!r} is not a scalar figure of the confusion matrix (valid: "
                f"{', '.join(scalar_figures(num_classes, topk))})"
            )
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.topk = topk
        self.figure = figure
        self.task = task
        for name, zeros in counts.items():
            self.add_state(name, default=zeros.clone(), dist_reduce_fx="sum")

    def _new_matrix(self) -> ConfusionMatrix:
        return ConfusionMatrix(self.num_classes, self.ignore_index, self.topk)

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        batch = self._new_matrix()
        batch.update(preds, target)
        for name, counts in batch.state_dict().items():
            state = getattr(self, name)
            state += counts.to(state.device)

    def confusion_matrix(self) -> ConfusionMatrix:
        """This process's counts as a pixelwise ``ConfusionMatrix`` (a copy)."""
        return self._new_matrix().load_state_dict(
            {name: getattr(self, name) for name in self._defaults}
        )

    def compute(self) -> Any:
        # Called inside torchmetrics' sync context: the states are then every process's sum.
        if self.figure is None:
            return self.confusion_matrix().compute(self.task)
        figures = self.confusion_matrix().compute()
        return torch.tensor(figures.get(self.figure, float("nan")), dtype=torch.float32)


def confusion_metrics(
    num_classes: int,
    figures: list[str],
    prefix: str = "",
    ignore_index: int | None = 255,
    topk: int = 5,
    **kwargs: Any,
) -> MetricCollection:
    """One ``ConfusionMatrixMetric`` per figure, named ``prefix + figure``, counted once:
    the collection's compute group makes them share one set of states, so
    ``self.log_dict(collection)`` in Lightning logs, syncs and resets them together."""
    metrics = {
        name: ConfusionMatrixMetric(num_classes, ignore_index, topk, figure=name, **kwargs)
        for name in figures
    }
    return MetricCollection(metrics, prefix=prefix or None, compute_groups=True)
