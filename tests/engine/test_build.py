"""Building a run's parts: data-dependent initialisation and transfer options."""

from __future__ import annotations

import torch

from pixelwise.checkpoint import load_checkpoint
from pixelwise.config import load_config
from pixelwise.engine import fit
from pixelwise.engine.build import build_model, sample_images
from pixelwise.models import create_model


def test_sample_images_stops_at_the_limit():
    batches = [(torch.full((4, 1, 2, 2), float(i)), torch.zeros(4)) for i in range(5)]
    images = sample_images(batches, max_images=10)
    assert images.shape == (10, 1, 2, 2)
    assert images[8:].eq(2).all()


def test_fastnet_whitening_is_initialised_from_the_data_and_stays_frozen(tiny_digits_overrides):
    overrides = [
        *tiny_digits_overrides,
        "train.epochs=2",
        "model.name=cifar_fastnet",
        "model.options={widths: [8, 16, 16]}",
        "optim.lr=0.01",
    ]
    cfg = load_config("digits", overrides)
    result = fit(cfg)
    whiten = load_checkpoint(result.run_dir / "checkpoints" / "last.pt")["model"]["whiten.weight"]
    torch.manual_seed(cfg.seed)
    fresh = create_model("cifar_fastnet", num_classes=10, in_channels=1, widths=(8, 16, 16))
    assert not torch.allclose(whiten, fresh.whiten.weight)
    half = whiten.shape[0] // 2
    assert torch.allclose(whiten[half:], -whiten[:half])  # the +/- eigenvector pairs


def test_pretrained_fastnet_keeps_its_whitening_when_fine_tuned(tmp_path, tiny_digits_overrides):
    options = ["model.name=cifar_fastnet", "model.options={widths: [8, 16, 16]}"]
    pretrained = create_model("cifar_fastnet", num_classes=10, in_channels=1, widths=(8, 16, 16))
    torch.nn.init.normal_(pretrained.whiten.weight)
    torch.save(pretrained.state_dict(), tmp_path / "w.pt")
    overrides = [
        *tiny_digits_overrides,
        *options,
        "train.epochs=1",
        f"model.weights={tmp_path / 'w.pt'}",
    ]
    result = fit(load_config("digits", overrides))
    whiten = load_checkpoint(result.run_dir / "checkpoints" / "last.pt")["model"]["whiten.weight"]
    assert torch.equal(whiten, pretrained.whiten.weight)  # neither re-initialised nor trained


def test_new_classifier_reaches_the_model(tmp_path, tiny_digits_overrides):
    cfg = load_config("digits", tiny_digits_overrides)
    source = build_model(cfg, 10)
    torch.save(source.state_dict(), tmp_path / "w.pt")
    kept = load_config(
        "digits",
        [*tiny_digits_overrides, f"model.weights={tmp_path / 'w.pt'}"],
    )
    fresh = load_config(
        "digits",
        [*tiny_digits_overrides, f"model.weights={tmp_path / 'w.pt'}", "model.new_classifier=true"],
    )
    assert torch.equal(build_model(kept, 10).fc.weight, source.fc.weight)
    assert not torch.equal(build_model(fresh, 10).fc.weight, source.fc.weight)
