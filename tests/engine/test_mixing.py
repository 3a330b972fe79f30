"""Batch mixing: MixUp and CutMix with soft targets, CutMix of masks, and the config rules."""

from __future__ import annotations

import pytest
import torch

from pixelwise.config import ConfigError, load_config
from pixelwise.engine.mixing import ClassificationMixer, MaskCutMix, batch_mixer, no_mixing


def _batch(n: int = 8, classes: int = 5):
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 3, 16, 16, generator=g), torch.arange(n) % classes


def test_mixup_blends_each_image_with_the_next_and_mixes_its_targets():
    torch.manual_seed(0)
    images, labels = _batch()
    mixed, soft, hard = ClassificationMixer(5, mixup_alpha=0.4)(images, labels)
    assert soft.shape == (8, 5) and torch.allclose(soft.sum(1), torch.ones(8))
    lam = float(soft[0, labels[0]])  # labels differ from their neighbours', so lam is visible
    assert torch.allclose(mixed, lam * images + (1 - lam) * images.roll(1, 0), atol=1e-6)
    assert torch.equal(hard, soft.argmax(1))  # figures: the dominant class


def test_cutmix_pastes_a_box_of_the_next_image_with_its_area_as_the_weight():
    torch.manual_seed(1)
    images, labels = _batch()
    mixed, soft, _ = ClassificationMixer(5, cutmix_alpha=1.0)(images, labels)
    from_other = (mixed != images).any(1)[0]  # pixels of sample 0 taken from sample 7
    assert torch.equal(mixed[0][:, from_other], images[7][:, from_other])
    assert abs(float(soft[0, labels[7]]) - float(from_other.float().mean())) < 1e-6


def test_mix_prob_zero_leaves_the_batch_and_its_hard_labels():
    images, labels = _batch()
    mixed, targets, hard = ClassificationMixer(5, 0.2, 1.0, prob=0.0)(images, labels)
    assert mixed is images and targets is labels and hard is labels


@pytest.mark.parametrize("switch, kind", [(0.0, "mixup"), (1.0, "cutmix")])
def test_switch_prob_chooses_between_mixup_and_cutmix(switch, kind):
    torch.manual_seed(2)
    images, labels = _batch()
    mixed, _, _ = ClassificationMixer(5, 0.4, 1.0, switch_prob=switch)(images, labels)
    untouched_or_pasted = (mixed == images) | (mixed == images.roll(1, 0))
    assert bool(untouched_or_pasted.all()) == (kind == "cutmix")


def test_mask_cutmix_pastes_the_same_box_of_image_and_mask():
    torch.manual_seed(3)
    images = torch.rand(4, 3, 12, 12)
    masks = torch.arange(4).view(4, 1, 1).expand(4, 12, 12).clone()
    mixed, mixed_masks, hard = MaskCutMix(alpha=1.0)(images, masks)
    assert hard is mixed_masks and mixed_masks.dtype == masks.dtype
    pasted = mixed_masks != masks
    assert pasted.any()
    assert torch.equal((mixed != images).any(1), pasted)  # the image moved where the mask did
    assert torch.equal(mixed_masks[pasted], masks.roll(1, 0)[pasted])


def test_batch_mixer_follows_the_config():
    assert batch_mixer(load_config("digits"), 10) is no_mixing
    cfg = load_config("digits", ["data.mixup_alpha=0.2", "data.cutmix_alpha=1.0"])
    assert isinstance(batch_mixer(cfg, 10), ClassificationMixer)
    seg = load_config("pet_unet_ce", ["data.cutmix_alpha=1.0", "data.mix_prob=0.5"])
    mixer = batch_mixer(seg, 3)
    assert isinstance(mixer, MaskCutMix) and mixer.prob == 0.5


@pytest.mark.parametrize(
    "config, overrides, key",
    [
        ("digits", ["data.mixup_alpha=-1"], "data.mixup_alpha"),
        ("digits", ["data.mix_prob=1.5"], "data.mix_prob"),
        ("digits", ["data.cutmix_alpha=1", "loss.terms=[{name: focal}]"], "loss.terms"),
        ("pet_unet_ce", ["data.mixup_alpha=0.2"], "data.mixup_alpha"),
    ],
)
def test_impossible_mixing_is_refused_naming_the_key(config, overrides, key):
    with pytest.raises(ConfigError, match=key):
        load_config(config, overrides)


def test_training_with_mixup_and_cutmix_logs_figures_on_hard_labels(small_digits):
    from pixelwise.engine import fit

    cfg = small_digits("train.epochs=1", "data.mixup_alpha=0.2", "data.cutmix_alpha=1.0")
    record = fit(cfg).history[0]
    assert 0.0 <= record["train/accuracy"] <= 1.0 and record["train/loss"] > 0
    assert "val/accuracy" in record
