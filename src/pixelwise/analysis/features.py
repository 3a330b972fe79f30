"""What a layer sees: feature maps of any named layer, and t-SNE of a split's features.

``feature_maps(model, "layer1", images)`` reads a layer's output through a forward
hook. For t-SNE, each image becomes one vector: a spatial map is averaged over its
positions (global average pooling), tokens over the sequence. Comparing a low-level
layer (the first stage: edges, strokes) with the penultimate features (what the
classifier separates linearly) shows classes untangle with depth.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from ..errors import UserError
from ..models.base import split_output
from .explain import find_module
from .receptive_field import model_device

PENULTIMATE = "penultimate"


@torch.no_grad()
def feature_maps(model: nn.Module, layer: str, images: torch.Tensor) -> torch.Tensor:
    """The output of module ``layer`` for a batch of (already normalised) images."""
    module = find_module(model, layer)
    captured: list[torch.Tensor] = []

    def hook(mod: nn.Module, inputs: tuple, output: object) -> None:
        if not captured and isinstance(output, torch.Tensor):
            captured.append(output.detach().clone())

    handle = module.register_forward_hook(hook)
    was_training = model.training
    model.eval()
    try:
        model(images.to(model_device(model)))
    finally:
        handle.remove()
        model.train(was_training)
    if not captured:
        raise UserError(f"layer {layer!r} did not produce a tensor in an eval-mode forward pass")
    return captured[0].cpu()


def pooled(features: torch.Tensor) -> torch.Tensor:
    """One vector per image: (N, C, H, W) -> mean over H, W; (N, L, D) -> mean over L."""
    if features.dim() == 4:
        return features.mean(dim=(2, 3))
    if features.dim() == 3:
        return features.mean(dim=1)
    return features.flatten(1)


@torch.no_grad()
def penultimate(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The classifier's input: ``forward_head(..., pre_logits=True)``, else the last Linear's input."""
    if hasattr(model, "forward_head") and hasattr(model, "forward_features"):
        return model.forward_head(model.forward_features(images), pre_logits=True)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise UserError(f"{type(model).__name__} has no Linear layer: name a layer instead")
    captured: list[torch.Tensor] = []
    handle = linears[-1].register_forward_hook(lambda m, i, o: captured.append(i[0]))
    try:
        split_output(model(images))[0]
    finally:
        handle.remove()
    return captured[-1]


@dataclass
class FeatureSet:
    """Vectors of one layer over a split: ``features[i]`` belongs to class ``labels[i]``."""

    layer: str
    features: np.ndarray  # (N, D)
    labels: np.ndarray  # (N,)


def evenly_spaced(dataset: Dataset, count: int | None) -> Dataset:
    """At most ``count`` items spread over the whole split (every class shows up)."""
    size = len(dataset)  # type: ignore[arg-type]
    if count is None or count >= size:
        return dataset
    return Subset(dataset, np.linspace(0, size - 1, count).round().astype(int).tolist())


@torch.no_grad()
def layer_features(
    model: nn.Module,
    dataset: Dataset,
    layers: Sequence[str] = (PENULTIMATE,),
    max_samples: int | None = 1000,
    batch_size: int = 128,
) -> list[FeatureSet]:
    """Pooled features of each layer (a module name or ``"penultimate"``) over a split."""
    modules = {name: find_module(model, name) for name in layers if name != PENULTIMATE}
    device = model_device(model)
    captured: dict[str, torch.Tensor] = {}

    def keep(name: str) -> Callable[..., None]:
        # a forward hook must return None: a returned value replaces the layer's output
        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            captured.setdefault(name, pooled(output).float().cpu())

        return hook

    handles = [module.register_forward_hook(keep(name)) for name, module in modules.items()]
    collected: dict[str, list[torch.Tensor]] = {name: [] for name in layers}
    labels: list[torch.Tensor] = []
    was_training = model.training
    model.eval()
    try:
        loader = DataLoader(evenly_spaced(dataset, max_samples), batch_size=batch_size)
        for images, targets in loader:
            if targets.dim() != 1:
                raise UserError("t-SNE by class needs a classification split (one label per image)")
            captured.clear()
            images = images.to(device)
            if PENULTIMATE in collected:
                collected[PENULTIMATE].append(pooled(penultimate(model, images)).float().cpu())
            if modules:
                model(images)
            for name in modules:
                collected[name].append(captured[name])
            labels.append(targets)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    label_array = torch.cat(labels).numpy()
    return [FeatureSet(name, torch.cat(collected[name]).numpy(), label_array) for name in layers]


def default_tsne_layers(model: nn.Module) -> list[str]:
    """A low-level layer (the first level of ``feature_info``, else the first conv) and the penultimate."""
    info = getattr(model, "feature_info", None)
    if info:
        return [info[0].name, PENULTIMATE]
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            return [name, PENULTIMATE]
    return [PENULTIMATE]


def tsne_embedding(
    features: np.ndarray, perplexity: float = 30.0, seed: int = 0, threads: int | None = 1
) -> np.ndarray:
    """2-D t-SNE (scikit-learn) of standardised features; perplexity capped below N / 3.

    ``threads`` limits the OpenMP threads of the optimisation. One is the default because
    on a busy machine spinning threads make it many times slower (2 shared cores: 0.4 s
    instead of 8 s for 40 points, 16 s instead of 93 s for 1,000); None uses every core.
    """
    from sklearn.manifold import TSNE  # scikit-learn is slow to import: only for t-SNE
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    count = len(features)
    if count < 5:
        raise UserError(f"t-SNE needs at least 5 samples, got {count}")
    scaled = StandardScaler().fit_transform(features.astype(np.float64))
    tsne = TSNE(
        n_components=2,
        perplexity=min(perplexity, (count - 1) / 3),
        init="pca",
        random_state=seed,
    )
    with threadpool_limits(limits=threads):
        return tsne.fit_transform(scaled).astype(np.float32)
