"""Feature maps of named layers, pooled features over a split, t-SNE."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from pixelwise.analysis import default_tsne_layers, feature_maps, layer_features, tsne_embedding
from pixelwise.models import create_model


@pytest.fixture
def model():
    torch.manual_seed(0)
    return create_model("small_cnn", num_classes=3, in_channels=1, width=4)


def test_feature_maps_of_a_named_layer(model):
    maps = feature_maps(model, "stages.0", torch.randn(2, 1, 16, 16))
    assert maps.shape == (2, 4, 8, 8)  # width 4, first stage halves 16 -> 8
    with pytest.raises(ValueError, match="did you mean stages.0"):
        feature_maps(model, "stage.0", torch.randn(1, 1, 16, 16))


def test_layer_features_pool_every_layer_over_a_split(model):
    images, labels = torch.randn(37, 1, 16, 16), torch.arange(37) % 3
    sets = layer_features(model, TensorDataset(images, labels), ["stages.0", "penultimate"], 30, 8)
    low, high = sets
    assert low.features.shape == (30, 4) and high.features.shape == (30, 16)
    assert (low.layer, high.layer) == ("stages.0", "penultimate")
    assert set(low.labels.tolist()) == {0, 1, 2}
    assert default_tsne_layers(model) == ["stages.0", "penultimate"]


def test_tsne_keeps_separate_clusters_apart():
    rng = np.random.default_rng(0)
    centres = np.array([[10.0] * 8, [-10.0] * 8, [10.0] * 4 + [-10.0] * 4])
    labels = np.repeat(np.arange(3), 20)
    features = centres[labels] + rng.normal(size=(60, 8))
    points = tsne_embedding(features, seed=0)
    assert points.shape == (60, 2)
    # Each point's nearest neighbour in the embedding shares its class.
    distances = np.linalg.norm(points[:, None] - points[None], axis=-1) + np.eye(60) * 1e9
    assert (labels[distances.argmin(axis=1)] == labels).mean() > 0.95
    with pytest.raises(ValueError, match="at least 5 samples"):
        tsne_embedding(features[:3])
