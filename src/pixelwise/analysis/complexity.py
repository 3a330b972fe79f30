"""Parameters and multiply-accumulates (MACs) per layer, by formula.

One forward pass of a single image with a hook on every leaf module (and on each
attention module as a whole) reads each layer's input and output shapes and applies
the layer's formula. Counts are per image. ``docs/analysis.md`` gives every formula:

* convolution: params ``C'·(C·K·K/g + 1)`` (the 1 with a bias),
  MACs ``H'·W'·C'·C·K·K/g``;
* linear: params ``out·(in + 1)``, MACs ``in·out`` per token;
* attention (``nn.MultiheadAttention`` or any module with ``in_proj_weight`` and
  ``num_heads``): the Q, K, V and output projections plus ``Q Kᵀ`` and ``A V``,
  each ``Lq·Lk·E`` MACs;
* batch norm: 0 MACs, because at inference it folds into the neighbouring
  convolution; layer, group and instance norm: 2 MACs per element (variance and scale);
* max pooling: 0 (comparisons); average pooling: one accumulate per window element;
* activations, dropout, reshapes and functional ops outside modules (residual sums,
  ``F.interpolate``): 0.

FLOPs are reported as 2 x MACs (one multiply, one add). Libraries disagree on what
"FLOPs" means; torchvision's "GFLOPS" figures are MACs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import UserError
from ..models import create_model, get_spec
from .receptive_field import FieldTracer, field_of, model_device, traced_input


@dataclass
class LayerRow:
    """One executed layer: what it outputs, what it holds, what it costs."""

    name: str
    type: str
    output_shape: tuple[int, ...] | None  # without the batch dimension
    params: int
    macs: int
    receptive_field: str = "-"  # side in input pixels, "-" for tokens or flat features
    stride: str = "-"  # cumulative stride (jump) in input pixels
    note: str = ""

    @property
    def shape_text(self) -> str:
        return "x".join(map(str, self.output_shape)) if self.output_shape else "-"


@dataclass
class Complexity:
    """Per-layer rows in execution order and the totals of one image."""

    input_size: tuple[int, ...]
    rows: list[LayerRow] = field(default_factory=list)
    params: int = 0  # every parameter of the model, counted once
    macs: int = 0

    @property
    def flops(self) -> int:
        """2 x MACs: one multiply and one add per multiply-accumulate."""
        return 2 * self.macs

    def macs_by_type(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for row in self.rows:
            totals[row.type] = totals.get(row.type, 0) + row.macs
        return totals


# --------------------------------------------------------------------------- formulas
def _elements(shape: Sequence[int]) -> int:
    return math.prod(shape)


def conv_macs(module: nn.modules.conv._ConvNd, inputs: tuple, output: torch.Tensor) -> int:
    """``H'·W'·C'·(C/g)·K·K``: every output element is a dot product over its window.

    A transposed convolution spreads every *input* element over ``C'/g·K·K`` outputs.
    """
    kernel = _elements(module.kernel_size)
    if module.transposed:
        return _elements(inputs[0].shape) * module.out_channels // module.groups * kernel
    return _elements(output.shape) * module.in_channels // module.groups * kernel


def linear_macs(module: nn.Linear, inputs: tuple, output: torch.Tensor) -> int:
    """``in·out`` for each token (every leading dimension of the input)."""
    return _elements(output.shape) * module.in_features


def norm_macs(module: nn.Module, inputs: tuple, output: torch.Tensor) -> int:
    """Batch norm folds into the neighbouring conv at inference: 0. Others: 2 per element."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return 0
    return 2 * _elements(output.shape)


def avg_pool_macs(module: nn.Module, inputs: tuple, output: torch.Tensor) -> int:
    """One accumulate per window element: ``outputs · k·k`` (adaptive: every input once)."""
    if isinstance(module, nn.modules.pooling._AdaptiveAvgPoolNd):
        return _elements(inputs[0].shape)
    kernel = module.kernel_size
    window = _elements(kernel) if isinstance(kernel, tuple) else kernel ** (output.dim() - 2)
    return _elements(output.shape) * window


def upsample_macs(module: nn.Upsample, inputs: tuple, output: torch.Tensor) -> int:
    """Nearest neighbour copies (0); bilinear weighs 4 neighbours per output element."""
    return 4 * _elements(output.shape) if "linear" in module.mode else 0


def attention_macs(module: nn.Module, inputs: tuple, output: Any) -> int:
    """Projections ``Lq·E·E`` (Q, output) and ``Lk·E_kv·E`` (K, V), plus ``2·Lq·Lk·E``.

    ``Q Kᵀ`` costs ``h·Lq·Lk·(E/h) = Lq·Lk·E`` and so does ``A V``; softmax is not a MAC.
    For a module other than ``nn.MultiheadAttention`` the output projection is its own
    ``Linear`` child and is counted there.
    """
    query = inputs[0]
    if isinstance(module, nn.MultiheadAttention):
        key = inputs[1] if len(inputs) > 1 else query
        tokens_dim = 1 if module.batch_first or query.dim() == 2 else 0
        batch = query.shape[0] if module.batch_first and query.dim() == 3 else 1
        if not module.batch_first and query.dim() == 3:
            batch = query.shape[1]
        lq, lk = query.shape[tokens_dim], key.shape[tokens_dim]
        e = module.embed_dim
        projections = lq * e * e + lk * module.kdim * e + lk * module.vdim * e + lq * e * e
        return batch * (projections + 2 * lq * lk * e)
    e = module.in_proj_weight.shape[1]
    lq = query.shape[-2]
    batch = _elements(query.shape[:-2])
    return batch * (lq * e * module.in_proj_weight.shape[0] + 2 * lq * lq * e)


def is_attention(module: nn.Module) -> bool:
    return isinstance(module, nn.MultiheadAttention) or (
        hasattr(module, "in_proj_weight") and hasattr(module, "num_heads")
    )


MacFormula = Callable[[nn.Module, tuple, Any], int]
FORMULAS: list[tuple[tuple[type, ...], MacFormula]] = [
    ((nn.modules.conv._ConvNd,), conv_macs),
    ((nn.Linear,), linear_macs),
    (
        (
            nn.modules.batchnorm._NormBase,
            nn.LayerNorm,
            nn.GroupNorm,
            nn.LocalResponseNorm,
        ),
        norm_macs,
    ),
    ((nn.modules.pooling._AvgPoolNd, nn.modules.pooling._AdaptiveAvgPoolNd), avg_pool_macs),
    ((nn.Upsample,), upsample_macs),
]


def layer_macs(module: nn.Module, inputs: tuple, output: Any) -> int:
    """The MACs of one call of ``module``; 0 for layers without multiply-accumulates."""
    if is_attention(module):
        return attention_macs(module, inputs, output)
    first = _first_tensor(output)
    if first is None:
        return 0
    for types, formula in FORMULAS:
        if isinstance(module, types):
            return int(formula(module, inputs, first))
    return 0


def conv_params(module: nn.modules.conv._ConvNd) -> int:
    """``C'·(C·K·K/g + 1)`` with a bias, ``C'·C·K·K/g`` without."""
    per_output = module.in_channels * _elements(module.kernel_size) // module.groups
    return module.out_channels * (per_output + (1 if module.bias is not None else 0))


def _first_tensor(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (list, tuple)):
        for item in value:
            found = _first_tensor(item)
            if found is not None:
                return found
    if isinstance(value, dict):
        return _first_tensor(list(value.values()))
    return None


# --------------------------------------------------------------------------- the count
def counted_modules(model: nn.Module) -> list[nn.Module]:
    """Leaf modules, plus attention modules as wholes (their inner projections are theirs)."""
    units: list[nn.Module] = []

    def visit(module: nn.Module) -> None:
        children = list(module.children())
        if not children or is_attention(module):
            units.append(module)
            if not isinstance(module, nn.MultiheadAttention):
                for child in children:  # a custom attention's out_proj runs as a module
                    visit(child)
            return
        for child in children:
            visit(child)

    visit(model)
    return units


def _own_parameters(module: nn.Module) -> list[nn.Parameter]:
    """Parameters a row owns: its direct ones (all of them for ``nn.MultiheadAttention``)."""
    recurse = isinstance(module, nn.MultiheadAttention)
    return list(module.parameters(recurse=recurse))


@torch.no_grad()
def complexity(model: nn.Module, input_size: Sequence[int] = (3, 224, 224)) -> Complexity:
    """Per-layer rows and totals for one image of ``input_size`` (C, H, W).

    The model runs in eval mode (restored afterwards) on its own device; build it on
    ``torch.device("meta")`` to count a large model without allocating its weights.
    """
    input_size = tuple(int(s) for s in input_size)
    names = {module: name or type(module).__name__ for name, module in model.named_modules()}
    result = Complexity(input_size)
    seen: set[int] = set()

    def record(module: nn.Module, inputs: tuple, output: Any) -> None:
        fresh = [p for p in _own_parameters(module) if id(p) not in seen]
        seen.update(id(p) for p in fresh)
        first = _first_tensor(output)
        field = field_of(first) if first is not None else None
        result.rows.append(
            LayerRow(
                name=names[module],
                type=type(module).__name__,
                output_shape=tuple(first.shape[1:]) if first is not None else None,
                params=sum(p.numel() for p in fresh),
                macs=layer_macs(module, inputs, output),
                receptive_field=field.describe_size() if field else "-",
                stride=field.describe_jump() if field else "-",
            )
        )

    handles = [m.register_forward_hook(record) for m in counted_modules(model)]
    was_training = model.training
    model.eval()
    try:
        with FieldTracer():
            model(traced_input(input_size, model_device(model)))
    except RuntimeError as err:
        raise UserError(
            f"the model cannot run on an input of {'x'.join(map(str, input_size))}: "
            f"{str(err).splitlines()[0]} (try another --input-size)"
        ) from err
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    _add_unrun_parameters(model, result, seen)
    result.params = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
    result.macs = sum(row.macs for row in result.rows)
    return result


def _add_unrun_parameters(model: nn.Module, result: Complexity, seen: set[int]) -> None:
    """Parameters no executed layer owns: embeddings held by containers, unused heads."""
    for name, module in model.named_modules():
        rest = [p for p in module.parameters(recurse=False) if id(p) not in seen]
        if not rest:
            continue
        seen.update(id(p) for p in rest)
        note = "not run in eval mode" if not list(module.children()) else "held directly"
        result.rows.append(
            LayerRow(
                name or "(model)",
                type(module).__name__,
                None,
                sum(p.numel() for p in rest),
                0,
                note=note,
            )
        )


def format_count(value: float) -> str:
    """1234567 -> '1.23M'."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.2f}{unit}"
    return f"{value:.0f}"


def model_complexity(
    name: str,
    input_size: Sequence[int] | None = None,
    num_classes: int | None = None,
    in_channels: int | None = None,
    **options: Any,
) -> Complexity:
    """Count zoo model ``name`` without allocating its weights (built on the meta device).

    ``input_size`` defaults to the model's own (``pixelwise models``); ``in_channels``
    defaults to the input size's channels.
    """

    size = tuple(input_size) if input_size is not None else get_spec(name).input_size
    channels = in_channels if in_channels is not None else size[0]
    try:
        with torch.device("meta"):
            model = create_model(name, num_classes=num_classes, in_channels=channels, **options)
    except (NotImplementedError, RuntimeError):  # a builder that needs real numbers
        model = create_model(name, num_classes=num_classes, in_channels=channels, **options)
    return complexity(model, (channels, *size[1:]))
