"""ConfusionMatrix: agreement with scikit-learn, and the invariants every figure must keep."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    jaccard_score,
    precision_recall_fscore_support,
    top_k_accuracy_score,
)

from pixelwise.metrics import (
    ConfusionMatrix,
    _count_on_device,
    _count_on_host,
    count_values,
    figures_from_matrix,
    prediction_coverage,
)

IGNORE = 255
SCALARS = [
    "accuracy",
    "pixel_accuracy",
    "balanced_accuracy",
    "mean_class_accuracy",
    "macro_precision",
    "macro_recall",
    "macro_f1",
    "weighted_precision",
    "weighted_recall",
    "weighted_f1",
    "miou",
    "fwiou",
    "mean_dice",
]
PER_CLASS = ["precision", "recall", "f1", "iou", "dice"]
FAST = settings(max_examples=60, deadline=None)


@st.composite
def labelled(draw, max_classes: int = 7, max_n: int = 120, ignore: bool = True):
    """(num_classes, target, preds): random labels with some targets set to the ignore label."""
    c = draw(st.integers(1, max_classes))
    n = draw(st.integers(1, max_n))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    # Skewed class frequencies, so that some classes are often absent.
    probs = torch.rand(c, generator=g) ** 3 + 1e-3
    target = torch.multinomial(probs, n, replacement=True, generator=g)
    preds = torch.where(
        torch.rand(n, generator=g) < 0.6, target, torch.multinomial(probs, n, True, generator=g)
    )
    if ignore and draw(st.booleans()):
        target[torch.rand(n, generator=g) < 0.2] = IGNORE
    return c, target, preds


def figures_of(c: int, preds: torch.Tensor, target: torch.Tensor, **kwargs) -> dict:
    cm = ConfusionMatrix(c, ignore_index=IGNORE, **kwargs)
    cm.update(preds, target)
    return cm.compute()


def same(a: float, b: float, tol: float = 1e-6) -> bool:
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= tol


# --------------------------------------------------------------------------- scikit-learn
@FAST
@given(labelled())
def test_agrees_with_scikit_learn(case):
    c, target, preds = case
    cm = ConfusionMatrix(c, ignore_index=IGNORE)
    cm.update(preds, target)
    figures = cm.compute()
    keep = target != IGNORE
    y, p = target[keep].numpy(), preds[keep].numpy()
    labels = list(range(c))
    assert cm.matrix.dtype == torch.int64
    if len(y) == 0:  # everything ignored
        assert int(cm.matrix.sum()) == 0
        assert math.isnan(figures["accuracy"]) and figures["absent_classes"] == labels
        return
    assert same(figures["accuracy"], accuracy_score(y, p))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn warns about undefined ratios
        assert np.array_equal(cm.matrix.numpy(), confusion_matrix(y, p, labels=labels))
        precision, recall, f1, support = precision_recall_fscore_support(
            y, p, labels=labels, zero_division=np.nan, average=None
        )
        jaccard = jaccard_score(y, p, labels=labels, average=None, zero_division=0)
        balanced = balanced_accuracy_score(y, p)
        for average in ("macro", "weighted"):
            mp, mr, mf, _ = precision_recall_fscore_support(
                y, p, labels=labels, zero_division=np.nan, average=average
            )
            if average == "macro" or not math.isnan(figures["weighted_precision"]):
                assert same(figures[f"{average}_precision"], mp)
            else:  # every class with support is never predicted: no weight is defined,
                # where scikit-learn falls back to the unweighted mean
                assert all(math.isnan(figures["precision"][k]) for k in set(y.tolist()))
            assert same(figures[f"{average}_recall"], mr)
            assert same(figures[f"{average}_f1"], mf)
    for name, expected in (("precision", precision), ("recall", recall), ("f1", f1)):
        for ours, theirs in zip(figures[name], expected):
            assert same(ours, theirs), (name, figures[name], expected)
    assert figures["support"] == support.tolist()
    present = [k for k in labels if k not in figures["absent_classes"]]
    for k in present:
        assert same(figures["iou"][k], jaccard[k])
    assert same(figures["miou"], float(np.mean(jaccard[present])))
    assert same(figures["balanced_accuracy"], balanced)


@FAST
@given(st.integers(3, 12), st.integers(1, 60), st.integers(1, 5), st.integers(0, 2**31 - 1))
def test_topk_agrees_with_scikit_learn(c, n, k, seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, generator=g)
    target = torch.randint(0, c, (n,), generator=g)
    figures = figures_of(c, logits, target, topk=k)
    if k >= c:  # every class is in the top k: not a figure worth reporting
        assert f"top{k}_accuracy" not in figures
        return
    expected = top_k_accuracy_score(target.numpy(), logits.numpy(), k=k, labels=list(range(c)))
    assert same(figures[f"top{k}_accuracy"], expected)
    assert same(figures["accuracy"], accuracy_score(target.numpy(), logits.argmax(1).numpy()))


def test_topk_skips_ignored_samples():
    logits = torch.tensor([[5.0, 1, 0, 0], [5.0, 1, 0, 0], [0.0, 0, 0, 5]])
    target = torch.tensor([1, IGNORE, 0])
    figures = figures_of(4, logits, target, topk=2)
    assert figures["top2_accuracy"] == 0.5  # sample 1 is ignored, sample 0 is a top-2 hit
    assert figures["accuracy"] == 0.0


# --------------------------------------------------------------------------- invariants
@FAST
@given(labelled())
def test_every_figure_is_in_unit_interval(case):
    c, target, preds = case
    figures = figures_of(c, preds, target)
    for name in SCALARS:
        assert math.isnan(figures[name]) or 0.0 <= figures[name] <= 1.0, name
    for name in PER_CLASS:
        assert len(figures[name]) == c
        assert all(math.isnan(v) or 0.0 <= v <= 1.0 for v in figures[name]), name


@FAST
@given(labelled(ignore=False))
def test_perfect_prediction_gives_one(case):
    c, target, _ = case
    figures = figures_of(c, target.clone(), target)
    for name in SCALARS:
        assert figures[name] == pytest.approx(1.0), name
    for k in range(c):
        expected = math.nan if k in figures["absent_classes"] else 1.0
        for name in PER_CLASS:
            assert same(figures[name][k], expected), (name, k)


@FAST
@given(labelled())
def test_permuting_samples_changes_nothing(case):
    c, target, preds = case
    order = torch.randperm(len(target), generator=torch.Generator().manual_seed(len(target)))
    first, second = ConfusionMatrix(c), ConfusionMatrix(c)
    first.update(preds, target)
    second.update(preds[order], target[order])
    assert torch.equal(first.matrix, second.matrix)
    assert _equal_figures(first.compute(), second.compute())


@FAST
@given(labelled(), st.integers(1, 7))
def test_splitting_into_batches_changes_nothing(case, batches):
    c, target, preds = case
    whole, split, merged = ConfusionMatrix(c), ConfusionMatrix(c), ConfusionMatrix(c)
    whole.update(preds, target)
    for p, t in zip(preds.tensor_split(batches), target.tensor_split(batches)):
        split.update(p, t)
        part = ConfusionMatrix(c)
        part.update(p, t)
        merged.merge(part)
    assert torch.equal(whole.matrix, split.matrix)
    assert torch.equal(whole.matrix, merged.matrix)
    assert _equal_figures(whole.compute(), split.compute())


@FAST
@given(labelled())
def test_ignore_index_is_never_counted(case):
    c, target, preds = case
    ignored = target == IGNORE
    shuffled = preds.clone()
    shuffled[ignored] = (preds[ignored] + 1) % c  # predictions at ignored places do not matter
    a, b = ConfusionMatrix(c), ConfusionMatrix(c)
    a.update(preds, target)
    b.update(shuffled, target)
    assert torch.equal(a.matrix, b.matrix)
    assert int(a.matrix.sum()) == int((~ignored).sum())


def test_ignore_index_inside_the_class_range():
    target = torch.tensor([0, 1, 2, 0])
    preds = torch.tensor([1, 1, 2, 2])
    cm = ConfusionMatrix(3, ignore_index=0)
    cm.update(preds, target)
    assert cm.matrix[0].sum() == 0 and int(cm.matrix.sum()) == 2
    no_ignore = ConfusionMatrix(3, ignore_index=None)
    no_ignore.update(preds, target)
    assert int(no_ignore.matrix.sum()) == 4


def test_absent_classes_are_nan_listed_and_left_out_of_means():
    # Classes 0..4; 3 appears only as a prediction, 4 nowhere.
    target = torch.tensor([0, 0, 1, 1, 2, 2])
    preds = torch.tensor([0, 1, 1, 1, 2, 3])
    figures = figures_of(5, preds, target)
    assert figures["absent_classes"] == [4]
    for name in PER_CLASS:
        assert math.isnan(figures[name][4]), name
    assert figures["iou"][3] == 0.0 and figures["precision"][3] == 0.0
    assert math.isnan(figures["recall"][3])  # no ground truth: nothing to recall
    iou = [1 / 2, 2 / 3, 1 / 2, 0.0]
    assert figures["miou"] == pytest.approx(sum(iou) / 4)  # over 4 classes, not 5
    assert figures["mean_class_accuracy"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
    # The same data in a 4-class matrix gives the same means: class 4 counts for nothing.
    smaller = figures_of(4, preds, target)
    for name in SCALARS:
        assert same(figures[name], smaller[name]), name


def test_empty_matrix_gives_nan_not_an_error():
    figures = ConfusionMatrix(3).compute()
    assert all(math.isnan(figures[name]) for name in SCALARS)
    assert figures["absent_classes"] == [0, 1, 2]


def test_hand_computed_segmentation_figures():
    """A 2x2 mask pair worked on paper: the formulas of docs/metrics.md."""
    target = torch.tensor([[[0, 0], [1, 2]]])
    logits = torch.zeros(1, 3, 2, 2)
    logits[0, 0] = torch.tensor([[9.0, 0], [9, 0]])  # predicts 0 at (0,0) and (1,0)
    logits[0, 1] = torch.tensor([[0.0, 9], [0, 0]])  # 1 at (0,1)
    logits[0, 2] = torch.tensor([[0.0, 0], [0, 9]])  # 2 at (1,1)
    f = figures_of(3, logits, target)
    # matrix rows (true): 0 -> [1, 1, 0], 1 -> [1, 0, 0], 2 -> [0, 0, 1]
    assert f["pixel_accuracy"] == pytest.approx(2 / 4)
    assert f["iou"] == pytest.approx([1 / 3, 0.0, 1.0])
    assert f["miou"] == pytest.approx(4 / 9)
    assert f["fwiou"] == pytest.approx((2 * 1 / 3 + 1 * 0 + 1 * 1) / 4)
    assert f["dice"] == pytest.approx([1 / 2, 0.0, 1.0])
    assert f["mean_class_accuracy"] == pytest.approx((1 / 2 + 0 + 1) / 3)
    assert "top5_accuracy" not in f  # top-k is a classification figure


def test_segmentation_logits_equal_flat_indices():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 4, 5, 6, generator=g)
    target = torch.randint(0, 4, (3, 5, 6), generator=g)
    target[0, :2] = IGNORE
    a, b = ConfusionMatrix(4), ConfusionMatrix(4)
    a.update(logits, target)
    b.update(logits.argmax(1).flatten(), target.flatten())
    assert torch.equal(a.matrix, b.matrix)


def test_out_of_range_values_raise_with_the_values():
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match=r"targets \[7\]"):
        cm.update(torch.tensor([0, 1]), torch.tensor([0, 7]))
    with pytest.raises(ValueError, match="predictions"):
        ConfusionMatrix(3).update(torch.tensor([0, 5]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="differ in shape"):
        ConfusionMatrix(3).update(torch.tensor([0, 1, 2]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="expected 3"):
        ConfusionMatrix(3).update(torch.zeros(2, 4), torch.tensor([0, 1]))


def test_predictions_at_ignored_places_may_be_anything():
    cm = ConfusionMatrix(3)
    cm.update(torch.tensor([0, 255, -4]), torch.tensor([0, 255, 255]))  # e.g. a copied mask
    assert int(cm.matrix.sum()) == 1


@FAST
@given(
    st.integers(1, 6),
    st.lists(st.integers(-2, 8) | st.just(IGNORE), min_size=0, max_size=40),
    st.integers(0, 2**31 - 1),
    st.booleans(),
)
def test_device_and_host_counting_agree(c, target_values, seed, from_logits):
    """The sync-free (CUDA) path and the CPU path, both run here on CPU: the same counts,
    and the same verdict on invalid values."""
    t = torch.tensor(target_values, dtype=torch.int64)
    g = torch.Generator().manual_seed(seed)
    p = torch.randint(0, c, t.shape, generator=g)
    if not from_logits and len(p):
        p[torch.rand(t.shape, generator=g) < 0.1] = c  # an invalid prediction, sometimes
    ignored = t == IGNORE
    host = _count_on_host(t, p, ignored, not from_logits, c)
    device, invalid = _count_on_device(t, p, ignored, not from_logits, c)
    bad = ~ignored & ((t < 0) | (t >= c) | (p < 0) | (p >= c))
    assert (host is None) == bool(bad.any())
    assert int(invalid) == int(bad.sum())
    if host is not None:
        assert torch.equal(host, device)


def test_count_values_drops_out_of_range():
    index = torch.tensor([-1, 0, 3, 3, 4, 9])
    assert count_values(index, 4).tolist() == [1, 0, 0, 2]


def test_figures_from_matrix_matches_compute():
    target = torch.tensor([0, 1, 1, 2])
    preds = torch.tensor([0, 1, 2, 2])
    cm = ConfusionMatrix(3)
    cm.update(preds, target)
    assert _equal_figures(figures_from_matrix(cm.matrix), cm.compute())


def test_reset_and_merge_checks():
    cm = ConfusionMatrix(3)
    cm.update(torch.tensor([0, 1]), torch.tensor([0, 1]))
    cm.reset()
    assert int(cm.matrix.sum()) == 0
    with pytest.raises(ValueError, match="cannot merge"):
        cm.merge(ConfusionMatrix(4))


def test_all_reduce_without_distributed_is_a_no_op():
    cm = ConfusionMatrix(3)
    cm.update(torch.tensor([0, 1]), torch.tensor([0, 2]))
    before = cm.matrix.clone()
    assert cm.all_reduce() is cm
    assert torch.equal(cm.matrix, before)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_counts_stay_on_the_device_and_agree_with_cpu():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 21, 64, 64, generator=g)
    target = torch.randint(0, 21, (4, 64, 64), generator=g)
    target[:, :3] = IGNORE
    cpu, gpu = ConfusionMatrix(21), ConfusionMatrix(21)
    cpu.update(logits, target)
    gpu.update(logits.cuda(), target.cuda())
    assert gpu.matrix.is_cuda
    assert torch.equal(cpu.matrix, gpu.matrix.cpu())
    assert _equal_figures(cpu.compute(), gpu.compute())
    index = torch.randint(-3, 30, (10_000,), generator=g)
    assert torch.equal(count_values(index, 25), count_values(index.cuda(), 25).cpu())
    bad = ConfusionMatrix(21)
    bad.update(logits.cuda(), torch.full((4, 64, 64), 40, device="cuda"))  # no sync, no raise
    with pytest.raises(ValueError, match="outside the classes"):
        bad.compute()


def _equal_figures(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    for key, value in a.items():
        if isinstance(value, float):
            if not same(value, b[key], 1e-12):
                return False
        elif isinstance(value, list) and value and isinstance(value[0], float):
            if not all(same(x, y, 1e-12) for x, y in zip(value, b[key])):
                return False
        elif value != b[key]:
            return False
    return True


# --------------------------------------------------------------------------- processes
def _reduce_on_two_processes(rank: int, init_file: str, results: str) -> None:
    import torch.distributed as dist
    from torch.utils.data import DistributedSampler

    from pixelwise.engine.distributed import ShardSampler

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    target = torch.tensor([0, 1, 2, 2, 1, IGNORE, 0])
    preds = torch.tensor([0, 2, 2, 1, 1, 0, 0])
    logits = torch.nn.functional.one_hot(preds, 6).float()
    shard, padded = ConfusionMatrix(6, topk=2), ConfusionMatrix(6, topk=2)
    mine = list(ShardSampler(range(7), rank, 2))
    shard.update(logits[mine], target[mine])
    repeated = list(DistributedSampler(range(7), num_replicas=2, rank=rank, shuffle=False))
    padded.update(logits[repeated], target[repeated])
    shard.all_reduce()
    padded.all_reduce()
    if rank == 0:
        torch.save({"shard": shard.compute(), "padded": padded.matrix}, results)
    dist.destroy_process_group()


@pytest.mark.slow
def test_all_reduce_over_processes_counts_every_sample_once(tmp_path):
    import torch.multiprocessing as mp

    results = tmp_path / "results.pt"
    mp.start_processes(  # fork: the children need not import torch again
        _reduce_on_two_processes,
        args=(str(tmp_path / "init"), str(results)),
        nprocs=2,
        join=True,
        start_method="fork",
    )
    reduced = torch.load(results, weights_only=True)
    target = torch.tensor([0, 1, 2, 2, 1, IGNORE, 0])
    preds = torch.tensor([0, 2, 2, 1, 1, 0, 0])
    single = figures_of(6, torch.nn.functional.one_hot(preds, 6).float(), target, topk=2)
    assert _equal_figures(reduced["shard"], single)
    assert sum(reduced["shard"]["support"]) == 6  # 7 samples, one ignored
    assert int(reduced["padded"].sum()) == 7  # DistributedSampler repeats a sample: counted twice


# --------------------------------------------------------------------------- each task's figures
def _classifier_and_segmenter_matrices() -> tuple[ConfusionMatrix, ConfusionMatrix]:
    g = torch.Generator().manual_seed(0)
    classifier = ConfusionMatrix(10, topk=5)
    classifier.update(torch.randn(40, 10, generator=g), torch.randint(0, 10, (40,), generator=g))
    segmenter = ConfusionMatrix(3)
    segmenter.update(
        torch.randn(2, 3, 4, 4, generator=g), torch.randint(0, 3, (2, 4, 4), generator=g)
    )
    return classifier, segmenter


def test_a_classifier_reports_classification_figures_only():
    classifier, _ = _classifier_and_segmenter_matrices()
    everything = classifier.compute()
    figures = classifier.compute(task="classification")
    assert list(figures) == [
        "accuracy",
        "balanced_accuracy",
        "macro_precision",
        "macro_recall",
        "macro_f1",
        "weighted_precision",
        "weighted_recall",
        "weighted_f1",
        "top5_accuracy",
        "precision",
        "recall",
        "f1",
        "support",
        "absent_classes",
    ]
    assert _equal_figures(figures, {k: everything[k] for k in figures})  # same numbers


def test_a_segmenter_reports_segmentation_figures_only():
    _, segmenter = _classifier_and_segmenter_matrices()
    figures = segmenter.compute(task="segmentation")
    assert set(figures) == {
        "pixel_accuracy",
        "mean_class_accuracy",
        "miou",
        "fwiou",
        "mean_dice",
        "precision",
        "recall",
        "iou",
        "dice",
        "support",
        "absent_classes",
    }


def test_figures_for_task_keeps_the_loss_and_refuses_an_unknown_task():
    from pixelwise.metrics import figures_for_task

    classifier, _ = _classifier_and_segmenter_matrices()
    figures = {"loss": 0.5, **classifier.compute()}
    assert figures_for_task(figures, "classification")["loss"] == 0.5
    assert "miou" not in figures_for_task(figures, "classification")
    with pytest.raises(ValueError, match="unknown task 'detection'; tasks are: classification"):
        figures_for_task(figures, "detection")


def test_prediction_coverage_names_stronger_weights_when_the_loss_is_weighted():
    matrix = torch.tensor([[5, 0, 0], [2, 3, 0], [1, 1, 0]])  # class 2 never predicted
    plain = prediction_coverage(matrix, ["a", "b", "c"])
    weighted = prediction_coverage(matrix, ["a", "b", "c"], weighted=True)
    assert plain is not None and "(data.class_weights=median_frequency)" in plain
    assert weighted is not None and "data.class_weights=median_frequency" not in weighted
    assert "stronger class weights (data.class_weight_power nearer 1" in weighted
    assert "never predicted: c" in weighted
