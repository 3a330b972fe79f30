"""Flip test-time augmentation and sliding-window inference."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pixelwise.tta import (
    hflip_tta,
    make_predictor,
    predict_logits,
    sliding_window,
    window_positions,
    window_weights,
)


def per_pixel_model(in_channels: int = 3, num_classes: int = 4) -> nn.Module:
    """1x1 convolutions: each pixel's logits depend on that pixel alone, so any tiling
    and any mirror must give back exactly the whole image's prediction."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(in_channels, 8, 1), nn.ReLU(), nn.Conv2d(8, num_classes, 1)
    ).eval()


def context_model(in_channels: int = 3, num_classes: int = 4) -> nn.Module:
    """A model that looks left: its predictions change under a mirror."""
    torch.manual_seed(1)
    conv = nn.Conv2d(in_channels, num_classes, (1, 3), padding=(0, 1))
    with torch.no_grad():
        conv.weight[..., 2] = 0  # only the pixel and its left neighbour
    return conv.eval()


@pytest.mark.parametrize(
    ("size", "window", "stride", "expected"),
    [
        (10, 4, 3, [0, 3, 6]),
        (10, 4, 4, [0, 4, 6]),  # 8 + 4 would pass the border: the last window is aligned
        (4, 4, 2, [0]),
        (3, 4, 2, [0]),
        (9, 3, 3, [0, 3, 6]),
    ],
)
def test_window_positions_cover_the_image(size, window, stride, expected):
    starts = window_positions(size, window, stride)
    assert starts == expected
    covered = set()
    for s in starts:
        covered |= set(range(s, min(s + window, size)))
    assert covered == set(range(size))


def test_gaussian_weights_peak_in_the_centre_and_never_vanish():
    w = window_weights(9, 12)
    assert w.shape == (9, 12)
    assert float(w.max()) == pytest.approx(1.0, abs=0.02)
    assert float(w.min()) >= 1e-3
    assert torch.allclose(w, w.flip(0)) and torch.allclose(w, w.flip(1))
    assert w[4, 5] > w[0, 0]
    assert torch.equal(window_weights(3, 5, "uniform"), torch.ones(3, 5))
    with pytest.raises(ValueError, match="weighting"):
        window_weights(3, 3, "cosine")  # type: ignore[arg-type]


@pytest.mark.parametrize("weighting", ["gaussian", "uniform"])
@pytest.mark.parametrize("overlap", [0.0, 0.5, 0.75])
@pytest.mark.parametrize("size", [(16, 16), (23, 37), (7, 40)])
def test_sliding_window_of_a_per_pixel_model_is_the_whole_image(weighting, overlap, size):
    model = per_pixel_model()
    images = torch.randn(2, 3, *size)
    expected = model(images).log_softmax(dim=1)
    got = sliding_window(model, images, (8, 12), overlap, num_classes=4, weighting=weighting)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=1e-5)


def test_sliding_window_averages_overlapping_windows():
    """A model whose output depends on its window position: the overlap is averaged."""

    class WindowIndex(nn.Module):
        def forward(self, x):  # class 0 everywhere, more sure in windows further right
            logits = torch.zeros(x.shape[0], 2, *x.shape[-2:])
            logits[:, 0] = x[:, 0, :1, :1]  # the window's top-left pixel value
            return logits

    images = torch.arange(6.0).expand(1, 1, 1, 6).clone()  # pixel value = column
    out = sliding_window(WindowIndex(), images, (1, 4), overlap=0.5, weighting="uniform")
    p = out.softmax(dim=1)[0, 0, 0]
    sig = torch.sigmoid
    # windows start at columns 0 and 2; columns 2, 3 are in both
    expected = [sig(torch.tensor(0.0))] * 2 + [
        (sig(torch.tensor(0.0)) + sig(torch.tensor(2.0))) / 2
    ] * 2
    expected += [sig(torch.tensor(2.0))] * 2
    assert torch.allclose(p, torch.stack(expected), atol=1e-6)


def test_sliding_window_needs_segmentation_logits():
    classifier = nn.Sequential(nn.Flatten(), nn.LazyLinear(3)).eval()
    with pytest.raises(ValueError, match="segmentation model"):
        sliding_window(classifier, torch.randn(1, 3, 8, 8), (4, 4), 0.5)
    with pytest.raises(ValueError, match="overlap"):
        sliding_window(per_pixel_model(), torch.randn(1, 3, 8, 8), (4, 4), 1.0)


def test_hflip_of_a_per_pixel_model_changes_nothing():
    model = per_pixel_model()
    images = torch.randn(2, 3, 9, 11)
    assert torch.allclose(hflip_tta(model, images), model(images).log_softmax(1), atol=1e-6)


def test_hflip_flips_segmentation_logits_back():
    model = context_model()
    images = torch.randn(2, 3, 5, 7)
    plain = model(images).softmax(1)
    mirrored = model(images.flip(-1)).flip(-1).softmax(1)
    expected = ((plain + mirrored) / 2).log()
    assert torch.allclose(hflip_tta(model, images), expected, atol=1e-6)
    logits = (model(images) + model(images.flip(-1)).flip(-1)) / 2
    assert torch.allclose(hflip_tta(model, images, average="logits"), logits, atol=1e-6)


def test_hflip_of_a_classifier_averages_without_flipping_back():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 5)).eval()
    images = torch.randn(3, 3, 4, 4)
    expected = ((model(images).softmax(1) + model(images.flip(-1)).softmax(1)) / 2).log()
    assert torch.allclose(hflip_tta(model, images), expected, atol=1e-6)


def test_predict_logits_without_options_is_the_model_output():
    model = context_model()
    images = torch.randn(2, 3, 6, 6)
    assert torch.equal(predict_logits(model, images), model(images))
    assert make_predictor() is None


def test_dict_outputs_are_unwrapped():
    class DictModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = per_pixel_model()

        def forward(self, x):
            return {"out": self.inner(x), "aux": None}

    model = DictModel().eval()
    images = torch.randn(1, 3, 10, 10)
    expected = model.inner(images).log_softmax(1)
    got = predict_logits(model, images, tta_hflip=True, window=(6, 6), overlap=0.5)
    assert torch.allclose(got, expected, atol=1e-5)


def test_sliding_window_with_flips_per_window():
    model = context_model()
    images = torch.randn(1, 3, 12, 12)
    # One window as large as the image: exactly flip TTA.
    whole = predict_logits(model, images, tta_hflip=True, window=(12, 12))
    assert torch.allclose(whole, hflip_tta(model, images), atol=1e-6)
    predict = make_predictor(tta_hflip=True, window=(8, 8), overlap=0.5, weighting="uniform")
    assert predict is not None
    out = predict(model, images)
    assert out.shape == (1, 4, 12, 12)
    assert torch.allclose(out.exp().sum(1), torch.ones(1, 12, 12), atol=1e-5)


def test_translate_tta_averages_the_image_and_its_two_shifts_by_probability():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(5)).eval()
    images = torch.randn(2, 3, 6, 6)
    model(images)
    padded = torch.nn.functional.pad(images, (1, 1, 1, 1), mode="reflect")
    views = [images, padded[..., :6, :6], padded[..., 2:, 2:]]
    probabilities = [model(v).softmax(dim=1) for v in views]
    expected = (probabilities[0] / 2 + probabilities[1] / 4 + probabilities[2] / 4).log()
    torch.testing.assert_close(predict_logits(model, images, translate=1), expected)
    predict = make_predictor(translate=1)
    torch.testing.assert_close(predict(model, images), expected)
    # with flips, each view is itself flip-averaged
    flipped = predict_logits(model, images, tta_hflip=True, translate=1)
    views_flip = [hflip_tta(model, v).exp() for v in views]
    torch.testing.assert_close(
        flipped, (views_flip[0] / 2 + views_flip[1] / 4 + views_flip[2] / 4).log()
    )
