"""Losses: shapes, ignore_index, weights, focal, Dice, sums and distillation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pixelwise.config import LossConfig, LossTerm
from pixelwise.errors import UserError
from pixelwise.losses import (
    CrossEntropy,
    DiceLoss,
    FocalLoss,
    WeightedSum,
    build_loss,
    distillation_loss,
)

IGNORE = 255


def _data(seed: int = 0, segmentation: bool = False, classes: int = 4):
    g = torch.Generator().manual_seed(seed)
    if segmentation:
        logits = torch.randn(2, classes, 5, 6, generator=g)
        target = torch.randint(0, classes, (2, 5, 6), generator=g)
    else:
        logits = torch.randn(8, classes, generator=g)
        target = torch.randint(0, classes, (8,), generator=g)
    return logits, target


def _with_ignored(logits, target):
    """Ignored entries replaced by garbage logits: the loss must not see them."""
    target = target.clone()
    target.view(-1)[::3] = IGNORE
    noisy = logits.clone()
    mask = (target == IGNORE).unsqueeze(1).expand_as(noisy)
    noisy[mask] = 100.0
    return noisy, target


@pytest.mark.parametrize("segmentation", [False, True])
def test_cross_entropy_matches_pytorch_with_smoothing_and_weights(segmentation):
    logits, target = _data(segmentation=segmentation)
    weight = torch.tensor([1.0, 2.0, 0.5, 1.5])
    loss = CrossEntropy(weight, label_smoothing=0.1, ignore_index=IGNORE)(logits, target)
    expected = F.cross_entropy(logits, target, weight=weight, label_smoothing=0.1)
    assert torch.allclose(loss, expected)


@pytest.mark.parametrize("segmentation", [False, True])
@pytest.mark.parametrize(
    "loss_fn",
    [
        CrossEntropy(ignore_index=IGNORE),
        FocalLoss(2.0, ignore_index=IGNORE),
        DiceLoss(1.0, ignore_index=IGNORE),
    ],
    ids=["ce", "focal", "dice"],
)
def test_every_loss_ignores_ignore_index(loss_fn, segmentation):
    logits, target = _data(segmentation=segmentation)
    noisy, ignored_target = _with_ignored(logits, target)
    keep = ignored_target != IGNORE
    flat = logits.movedim(1, -1)[keep] if segmentation else logits[keep]
    assert torch.allclose(loss_fn(noisy, ignored_target), loss_fn(flat, target[keep]), atol=1e-6)


def test_focal_with_gamma_zero_is_cross_entropy_and_down_weights_easy_examples():
    logits, target = _data()
    assert torch.allclose(FocalLoss(0.0)(logits, target), F.cross_entropy(logits, target))
    assert FocalLoss(2.0)(logits, target) < F.cross_entropy(logits, target)
    alpha = torch.tensor([0.0, 0.0, 0.0, 0.0])
    assert FocalLoss(2.0, alpha)(logits, target) == 0


def test_dice_perfect_prediction_is_near_zero_and_binary_works():
    target = torch.randint(0, 3, (2, 8, 8))
    perfect = F.one_hot(target, 3).movedim(-1, 1).float() * 50
    assert DiceLoss(smooth=1.0)(perfect, target) < 1e-3
    wrong = F.one_hot((target + 1) % 3, 3).movedim(-1, 1).float() * 50
    assert DiceLoss(smooth=1e-6)(wrong, target) > 0.99
    binary_target = (target > 0).long()
    binary_logits = (binary_target.unsqueeze(1).float() * 2 - 1) * 50
    assert DiceLoss()(binary_logits, binary_target) < 1e-3
    assert CrossEntropy()(binary_logits, binary_target) < 1e-3


def test_build_loss_weighted_sum_of_terms():
    logits, target = _data(segmentation=True)
    cfg = LossConfig(terms=[LossTerm("cross_entropy", 1.0), LossTerm("dice", 0.5)])
    loss = build_loss(cfg, 4, IGNORE)
    assert isinstance(loss, WeightedSum)
    expected = F.cross_entropy(logits, target) + 0.5 * DiceLoss()(logits, target)
    assert torch.allclose(loss(logits, target), expected)


def test_build_loss_class_weights_reach_cross_entropy_and_focal():
    logits, target = _data()
    weights = torch.tensor([1.0, 3.0, 1.0, 1.0])
    ce = build_loss(LossConfig(), 4, IGNORE, class_weights=weights)
    assert torch.allclose(ce(logits, target), F.cross_entropy(logits, target, weight=weights))
    focal = build_loss(LossConfig(terms=[LossTerm("focal")]), 4, IGNORE, weights)
    assert torch.equal(focal.alpha, weights)
    with pytest.raises(ValueError, match="3 values for 4 classes"):
        build_loss(LossConfig(), 4, IGNORE, class_weights=torch.ones(3))


def test_distillation_loss_is_zero_for_equal_outputs_and_scaled_by_t_squared():
    logits, target = _data(segmentation=True)
    assert distillation_loss(logits, logits, target, 4.0).abs() < 1e-6
    teacher = torch.randn_like(logits)
    kl = (
        F.kl_div(
            (logits / 2).log_softmax(1),
            (teacher / 2).log_softmax(1),
            log_target=True,
            reduction="sum",
        )
        / target.numel()
    )
    assert torch.allclose(distillation_loss(logits, teacher, target, 2.0), 4 * kl, atol=1e-6)
    # Ignored pixels do not count.
    noisy, ignored = _with_ignored(logits, target)
    keep = ignored != IGNORE
    expected = distillation_loss(
        logits.movedim(1, -1)[keep], teacher.movedim(1, -1)[keep], target[keep], 2.0
    )
    noisy_teacher = teacher.clone()
    assert torch.allclose(
        distillation_loss(noisy, noisy_teacher, ignored, 2.0, IGNORE), expected, atol=1e-6
    )


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_takes_soft_targets_smoothed_as_hard_ones(smoothing):
    logits, target = _data()
    loss = CrossEntropy(label_smoothing=smoothing, ignore_index=IGNORE)
    one_hot = F.one_hot(target, 4).float()
    assert torch.allclose(loss(logits, one_hot), loss(logits, target))
    soft = 0.7 * one_hot + 0.3 * one_hot.roll(1, 0)
    mixed = 0.7 * loss(logits, target) + 0.3 * loss(logits, target.roll(1, 0))
    assert torch.allclose(loss(logits, soft), mixed)  # linear in the target


@pytest.mark.parametrize("loss_fn", [FocalLoss(2.0), DiceLoss(1.0)], ids=["focal", "dice"])
def test_focal_and_dice_refuse_soft_targets_naming_the_keys(loss_fn):
    logits, target = _data()
    with pytest.raises(UserError, match="data.mixup_alpha"):
        loss_fn(logits, F.one_hot(target, 4).float())


def test_distillation_takes_soft_targets_and_counts_every_sample():
    student, target = _data(seed=1)
    teacher, _ = _data(seed=2)
    hard = distillation_loss(student, teacher, target, 2.0, IGNORE)
    soft = distillation_loss(student, teacher, F.one_hot(target, 4).float(), 2.0, IGNORE)
    assert torch.allclose(hard, soft)
