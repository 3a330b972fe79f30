"""ConfusionMatrixMetric: torchmetrics' Metric around ConfusionMatrix gives today's figures,
alone, after a simulated two-process sync, and through torchmetrics' reset and collections."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

pytest.importorskip("torchmetrics")

from pixelwise.errors import UserError  # noqa: E402
from pixelwise.integrations.torchmetrics import (  # noqa: E402
    ConfusionMatrixMetric,
    confusion_metrics,
)
from pixelwise.metrics import ConfusionMatrix  # noqa: E402

IGNORE = 255


def batches(task: str, num_classes: int, seed: int = 0, count: int = 4):
    """(logits, target) batches with ignored targets: (N, C) and (N,) or (N, C, H, W)
    and (N, H, W)."""
    g = torch.Generator().manual_seed(seed)
    shape = (6,) if task == "classification" else (2, 5, 7)
    out = []
    for _ in range(count):
        target = torch.randint(0, num_classes, shape, generator=g)
        target[torch.rand(shape, generator=g) < 0.2] = IGNORE
        logits = torch.randn(shape[0], num_classes, *shape[1:], generator=g)
        out.append((logits, target))
    return out


def same_figures(a: dict, b: dict) -> bool:
    """Equal figure for figure, NaN equal to NaN (lists element by element)."""

    def same(x, y) -> bool:
        if isinstance(x, list):
            return len(x) == len(y) and all(same(u, v) for u, v in zip(x, y))
        both_nan = isinstance(x, float) and math.isnan(x) and math.isnan(y)
        return x == y or both_nan

    return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)


def reference(data, num_classes: int) -> dict:
    cm = ConfusionMatrix(num_classes, ignore_index=IGNORE)
    for logits, target in data:
        cm.update(logits, target)
    return cm.compute()


@pytest.mark.parametrize(("task", "num_classes"), [("classification", 7), ("segmentation", 4)])
def test_figures_equal_the_confusion_matrix(task, num_classes):
    data = batches(task, num_classes)
    metric = ConfusionMatrixMetric(num_classes, ignore_index=IGNORE)
    for logits, target in data:
        metric.update(logits, target)
    figures = metric.compute()
    assert same_figures(figures, reference(data, num_classes))
    if task == "classification":
        assert "top5_accuracy" in figures


@pytest.mark.parametrize(("task", "num_classes"), [("classification", 7), ("segmentation", 4)])
def test_two_processes_synced_as_torchmetrics_does_give_the_single_process_figures(
    task, num_classes
):
    """Each "process" sees half the batches; torchmetrics' own sync (gather every state,
    stack, apply ``dist_reduce_fx``) runs with a gather that returns both processes' states."""
    data = batches(task, num_classes, seed=1, count=6)
    other = ConfusionMatrixMetric(num_classes, ignore_index=IGNORE)
    for logits, target in data[1::2]:
        other.update(logits, target)
    gathered: list[str] = []

    def gather_from_both(tensor, group=None):  # stands in for an all_gather over 2 ranks
        name = next(n for n in other._defaults if getattr(this, n) is tensor)
        gathered.append(name)
        return [tensor, getattr(other, name).clone()]

    this = ConfusionMatrixMetric(
        num_classes,
        ignore_index=IGNORE,
        dist_sync_fn=gather_from_both,
        distributed_available_fn=lambda: True,
    )
    for logits, target in data[0::2]:
        this.update(logits, target)
    local = this.confusion_matrix().compute()

    assert same_figures(this.compute(), reference(data, num_classes))
    assert sorted(gathered) == ["invalid", "matrix", "topk_counts"]
    # the sync is undone after compute: this process keeps accumulating its own counts
    assert same_figures(this.confusion_matrix().compute(), local)


def test_a_task_gives_the_figures_the_loop_logs_for_it():
    data = batches("segmentation", 4)
    metric = ConfusionMatrixMetric(4, ignore_index=IGNORE, task="segmentation")
    cm = ConfusionMatrix(4, ignore_index=IGNORE)
    for logits, target in data:
        metric.update(logits, target)
        cm.update(logits, target)
    assert same_figures(metric.compute(), cm.compute("segmentation"))


def test_one_figure_is_a_scalar_tensor_and_reset_starts_over():
    data = batches("segmentation", 4)
    metric = ConfusionMatrixMetric(4, ignore_index=IGNORE, figure="miou")
    for logits, target in data:
        metric.update(logits, target)
    value = metric.compute()
    assert value.shape == () and value.dtype == torch.float32
    assert value.item() == pytest.approx(reference(data, 4)["miou"], rel=1e-6)
    metric.reset()
    assert int(metric.matrix.sum()) == 0
    metric.update(*data[0])
    assert metric.compute().item() == pytest.approx(reference(data[:1], 4)["miou"], rel=1e-6)


def test_a_collection_counts_once_and_gives_each_figure():
    data = batches("classification", 7)
    collection = confusion_metrics(7, ["accuracy", "macro_f1"], prefix="val/")
    for logits, target in data:
        collection.update(logits, target)
    values = collection.compute()
    expected = reference(data, 7)
    assert set(values) == {"val/accuracy", "val/macro_f1"}
    for name in ("accuracy", "macro_f1"):
        assert values[f"val/{name}"].item() == pytest.approx(expected[name], rel=1e-6)
    assert len(collection.compute_groups) == 1  # one set of counts for both figures


def test_an_unknown_figure_names_the_valid_ones():
    with pytest.raises(UserError, match="'iou' is not a scalar figure.*miou"):
        ConfusionMatrixMetric(3, figure="iou")


def test_invalid_targets_raise_as_the_confusion_matrix_does():
    metric = ConfusionMatrixMetric(3, ignore_index=IGNORE)
    with pytest.raises(UserError, match="outside the classes"):
        metric.update(torch.tensor([0, 1]), torch.tensor([0, 7]))


def test_state_dict_round_trip_keeps_every_count():
    cm = ConfusionMatrix(5, ignore_index=IGNORE)
    logits, target = batches("classification", 5)[0]
    cm.update(logits, target)
    copy = ConfusionMatrix(5, ignore_index=IGNORE).load_state_dict(cm.state_dict())
    assert same_figures(copy.compute(), cm.compute())
    with pytest.raises(ValueError, match="does not fit"):
        ConfusionMatrix(4).load_state_dict(cm.state_dict())


def test_importing_pixelwise_imports_no_optional_integration():
    code = (
        "import sys, pixelwise, pixelwise.metrics, pixelwise.data, pixelwise.engine, "
        "pixelwise.integrations; "
        "print(sorted(m for m in ('torchmetrics', 'lightning', 'mlflow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
