"""Taking models apart: parameters and MACs per layer, receptive fields, feature maps,
t-SNE of features and Grad-CAM. Formulas and definitions: ``docs/analysis.md``."""

from __future__ import annotations

from .complexity import Complexity, LayerRow, complexity, format_count, model_complexity
from .explain import explain_layer, find_module
from .features import FeatureSet, default_tsne_layers, feature_maps, layer_features, tsne_embedding
from .gradcam import GradCam, default_gradcam_layer, grad_cam
from .receptive_field import Field, output_size, receptive_fields

__all__ = [
    "Complexity",
    "FeatureSet",
    "Field",
    "GradCam",
    "LayerRow",
    "complexity",
    "default_gradcam_layer",
    "default_tsne_layers",
    "explain_layer",
    "feature_maps",
    "find_module",
    "format_count",
    "grad_cam",
    "model_complexity",
    "layer_features",
    "output_size",
    "receptive_fields",
    "tsne_embedding",
]
