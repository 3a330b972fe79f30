"""Receptive fields and cumulative strides, traced through a real forward pass.

For one output pixel of a layer, the receptive field ``r`` is the side of the input
window it can see, and the jump (cumulative stride) ``j`` is the distance in input
pixels between two neighbouring output pixels. A layer with kernel ``k``, stride
``s`` and dilation ``d`` maps (Araujo et al., 2019, "Computing Receptive Fields"):

    r_out = r_in + (k - 1) · d · j_in        j_out = j_in · s

starting from ``r = 1, j = 1`` at the input. The trace follows every tensor through
the forward pass (a ``TorchFunctionMode`` sees each ``conv2d``, pooling and
element-wise op): a residual sum or a concatenation takes the largest field of its
same-sized inputs, which is the main path; broadcast gates (squeeze-excitation's
1 x 1 maps) are ignored. Padding does not change ``r`` or ``j``. Upsampling divides
the jump (a transposed convolution of kernel k and stride s sees ``ceil(k / s)``
input pixels). Only (N, C, H, W) maps have a field; flattened features and tokens
have none (shown as "-").
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

FIELD_ATTRIBUTE = "_pixelwise_field"


@dataclass(frozen=True)
class Field:
    """Receptive field side and jump (cumulative stride), per axis (height, width)."""

    size: tuple[float, float]
    jump: tuple[float, float]

    def step(self, kernel: Sequence[int], stride: Sequence[int], dilation: Sequence[int]) -> Field:
        """``r + (k - 1)·d·j`` and ``j·s`` on each axis."""
        size = tuple(
            r + (k - 1) * d * j for r, k, d, j in zip(self.size, kernel, dilation, self.jump)
        )
        jump = tuple(j * s for j, s in zip(self.jump, stride))
        return Field(size, jump)  # type: ignore[arg-type]

    def describe_size(self) -> str:
        return _pair(self.size)

    def describe_jump(self) -> str:
        return _pair(self.jump)


INPUT_FIELD = Field((1, 1), (1, 1))


def _pair(values: tuple[float, float]) -> str:
    text = [str(int(v)) if float(v).is_integer() else f"{v:.3g}" for v in values]
    return text[0] if text[0] == text[1] else f"{text[0]}x{text[1]}"


def _two(value: Any) -> tuple[int, int]:
    if isinstance(value, (list, tuple)):
        return (int(value[0]), int(value[-1])) if value else (1, 1)
    return (int(value), int(value))


def output_size(size: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> int:
    """``floor((H + 2p - d(k - 1) - 1) / s) + 1``, the size of a conv or pool output."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def field_of(tensor: torch.Tensor) -> Field | None:
    """The field the trace attached to ``tensor``; None for tokens or flat features."""
    field = getattr(tensor, FIELD_ATTRIBUTE, None)
    return field if isinstance(field, Field) and tensor.dim() == 4 else None


# --------------------------------------------------------------------------- the trace
def _argument(args: tuple, kwargs: dict, index: int, name: str, default: Any) -> Any:
    if name in kwargs:
        return kwargs[name]
    return args[index] if len(args) > index else default


def _conv(field: Field, args: tuple, kwargs: dict, out: torch.Tensor) -> Field:
    weight = _argument(args, kwargs, 1, "weight", None)
    kernel = tuple(weight.shape[-2:])
    stride = _two(_argument(args, kwargs, 3, "stride", 1))
    dilation = _two(_argument(args, kwargs, 5, "dilation", 1))
    return field.step(kernel, stride, dilation)


def _conv_transpose(field: Field, args: tuple, kwargs: dict, out: torch.Tensor) -> Field:
    """Each output pixel sees ``ceil(k / s)`` input pixels; the jump shrinks by ``s``."""
    weight = _argument(args, kwargs, 1, "weight", None)
    kernel = tuple(weight.shape[-2:])
    stride = _two(_argument(args, kwargs, 3, "stride", 1))
    seen = tuple(math.ceil(k / s) for k, s in zip(kernel, stride))
    grown = field.step(seen, (1, 1), (1, 1))
    return Field(grown.size, tuple(j / s for j, s in zip(field.jump, stride)))  # type: ignore[arg-type]


def _pool_step(field: Field, args: tuple, kwargs: dict, dilation: Any) -> Field:
    kernel = _two(_argument(args, kwargs, 1, "kernel_size", 1))
    stride_arg = _argument(args, kwargs, 2, "stride", None)
    stride = kernel if stride_arg in (None, [], ()) else _two(stride_arg)
    return field.step(kernel, stride, _two(dilation))


def _max_pool(field: Field, args: tuple, kwargs: dict, out: torch.Tensor) -> Field:
    return _pool_step(field, args, kwargs, _argument(args, kwargs, 4, "dilation", 1))


def _avg_pool(field: Field, args: tuple, kwargs: dict, out: torch.Tensor) -> Field:
    return _pool_step(field, args, kwargs, 1)


def _resize(field: Field, source: torch.Tensor, out: torch.Tensor) -> Field:
    """Spatial size changed by an op without a kernel: adaptive pooling or resizing.

    Shrinking from ``i`` to ``o`` pools windows of ``ceil(i / o)`` at stride ``floor(i / o)``
    (a global pool when ``o = 1``); growing divides the jump by ``o / i``.
    """
    size, jump = list(field.size), list(field.jump)
    for axis, (i, o) in enumerate(zip(source.shape[-2:], out.shape[-2:])):
        if o < i:
            k, s = math.ceil(i / o), i // o
            size[axis] += (k - 1) * jump[axis]
            jump[axis] *= s
        elif o > i:
            jump[axis] *= i / o
    return Field(tuple(size), tuple(jump))  # type: ignore[arg-type]


RULES: dict[str, Callable[[Field, tuple, dict, torch.Tensor], Field]] = {
    "conv2d": _conv,
    "conv_transpose2d": _conv_transpose,
    "max_pool2d": _max_pool,
    "_max_pool2d": _max_pool,
    "max_pool2d_with_indices": _max_pool,
    "avg_pool2d": _avg_pool,
}
KEEP = {"pad", "constant_pad_nd"}  # padding changes neither r nor j


def _tensors(value: Any) -> Iterator[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)


def _main_input(inputs: list[torch.Tensor], out: torch.Tensor) -> torch.Tensor | None:
    """The traced input with the largest field, preferring inputs the size of ``out``."""
    traced = [t for t in inputs if isinstance(getattr(t, FIELD_ATTRIBUTE, None), Field)]
    if not traced:
        return None
    same = [t for t in traced if t.dim() == out.dim() and t.shape[-2:] == out.shape[-2:]]
    candidates = same or [t for t in traced if t.dim() >= 3] or traced
    return max(candidates, key=lambda t: getattr(t, FIELD_ATTRIBUTE).size)


class FieldTracer(TorchFunctionMode):
    """Attaches a :class:`Field` to every tensor computed from the traced input."""

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        name = getattr(func, "__name__", "")
        if name in ("__get__", "__set__", "dim", "size"):
            return result
        inputs = list(_tensors(args)) + list(_tensors(kwargs))
        for out in _tensors(result):
            if out.dim() < 2:
                continue
            source = _main_input(inputs, out)
            if source is None:
                continue
            field = getattr(source, FIELD_ATTRIBUTE)
            if name in RULES and source.dim() == 4:
                field = RULES[name](field, args, kwargs, out)
            elif (
                name not in KEEP
                and source.dim() == 4
                and out.dim() == 4
                and source.shape[-2:] != out.shape[-2:]
            ):
                field = _resize(field, source, out)
            with contextlib.suppress(AttributeError, RuntimeError):  # exotic tensor subclasses
                setattr(out, FIELD_ATTRIBUTE, field)
        return result


def traced_input(input_size: Sequence[int], device: torch.device | str = "cpu") -> torch.Tensor:
    """A zero batch of one image, marked as the start of the trace (r = 1, j = 1)."""
    x = torch.zeros(1, *input_size, device=device)
    setattr(x, FIELD_ATTRIBUTE, INPUT_FIELD)
    return x


def model_device(model: nn.Module) -> torch.device:
    for tensor in [*model.parameters(), *model.buffers()]:
        return tensor.device
    return torch.device("cpu")


@torch.no_grad()
def receptive_fields(
    model: nn.Module, input_size: Sequence[int] = (3, 224, 224)
) -> dict[str, Field | None]:
    """The field of every leaf module's output, by module name, in execution order."""
    fields: dict[str, Field | None] = {}
    names = {module: name for name, module in model.named_modules()}

    def record(module: nn.Module, inputs: Any, output: Any) -> None:
        first = next(_tensors(output), None)
        fields[names[module]] = field_of(first) if first is not None else None

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(record) for m in leaves]
    was_training = model.training
    model.eval()
    try:
        with FieldTracer():
            model(traced_input(input_size, model_device(model)))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return fields
