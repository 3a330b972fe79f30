"""One layer worked through by hand: output size, receptive field, parameters, MACs.

``explain_layer(model, "features.28")`` fills the layer's own numbers into

    H' = floor((H + 2p - d(k - 1) - 1) / s) + 1

and into the receptive-field step and the parameter and MAC formulas, so a reader can
check every figure of ``pixelwise analyze`` with a pencil.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..errors import UserError
from .complexity import conv_params, layer_macs
from .receptive_field import FieldTracer, field_of, model_device, traced_input


def find_module(model: nn.Module, name: str) -> nn.Module:
    """The submodule called ``name``; a close-match hint when there is none."""
    modules = dict(model.named_modules())
    if name not in modules or name == "":
        near = difflib.get_close_matches(name, [n for n in modules if n], n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        raise UserError(
            f"no layer named {name!r} in {type(model).__name__}{hint} "
            "(layer names are the first column of `pixelwise analyze MODEL`)"
        )
    return modules[name]


@torch.no_grad()
def _capture(model: nn.Module, layer: nn.Module, input_size: Sequence[int]) -> dict[str, Any]:
    captured: dict[str, Any] = {}

    def hook(module: nn.Module, inputs: tuple, output: Any) -> None:
        if "inputs" not in captured:  # the first call, for a layer used twice
            captured.update(inputs=inputs, output=output, field_in=field_of(inputs[0]))
            captured["field_out"] = field_of(output) if isinstance(output, torch.Tensor) else None
            captured["macs"] = layer_macs(module, inputs, output)

    handle = layer.register_forward_hook(hook)
    was_training = model.training
    model.eval()
    try:
        with FieldTracer():
            model(traced_input(input_size, model_device(model)))
    finally:
        handle.remove()
        model.train(was_training)
    if "inputs" not in captured:
        raise UserError("the layer does not run in an eval-mode forward pass (an auxiliary head?)")
    return captured


def _pair(value: Any) -> tuple[int, int]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)  # type: ignore[return-value]


def _shape(tensor: torch.Tensor) -> str:
    return " x ".join(map(str, tensor.shape[1:]))


def _size_lines(layer: nn.Module, size_in: Sequence[int]) -> list[str]:
    kernel, stride = _pair(layer.kernel_size), _pair(layer.stride or layer.kernel_size)
    padding = _pair(layer.padding) if not isinstance(layer.padding, str) else (None, None)
    dilation = _pair(getattr(layer, "dilation", 1))
    ceil = getattr(layer, "ceil_mode", False)
    rounding = "ceil" if ceil else "floor"
    lines = [f"H' = {rounding}((H + 2p - d(k - 1) - 1) / s) + 1"]
    for axis, label in enumerate("HW"):
        h, k, s, p, d = size_in[axis], kernel[axis], stride[axis], padding[axis], dilation[axis]
        if p is None:
            lines.append(f"  {label}: padding={layer.padding!r} keeps the size: {h}")
            continue
        value = (h + 2 * p - d * (k - 1) - 1) / s
        result = (math.ceil(value) if ceil else math.floor(value)) + 1
        lines.append(
            f"  {label}' = {rounding}(({h} + 2·{p} - {d}·({k} - 1) - 1) / {s}) + 1 = {result}"
        )
    return lines


def explain_layer(model: nn.Module, name: str, input_size: Sequence[int] = (3, 224, 224)) -> str:
    """Text that derives the layer's output size, receptive field, parameters and MACs."""
    layer = find_module(model, name)
    captured = _capture(model, layer, input_size)
    inputs, output = captured["inputs"], captured["output"]
    lines = [f"{name}: {layer!r}"]
    if isinstance(output, torch.Tensor):
        lines.append(f"input {_shape(inputs[0])}  ->  output {_shape(output)}")
    is_conv = isinstance(layer, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d))
    if is_conv and inputs[0].dim() == 4:
        lines += ["", "output size:"] + _size_lines(layer, inputs[0].shape[-2:])
    elif isinstance(layer, nn.ConvTranspose2d):
        lines += [
            "",
            "output size (transposed): H' = (H - 1)·s - 2p + d(k - 1) + output_padding + 1",
        ]
    field_in, field_out = captured["field_in"], captured["field_out"]
    if field_in is not None and field_out is not None:
        lines += ["", "receptive field r and cumulative stride j (input pixels):"]
        if is_conv:
            k, s = _pair(layer.kernel_size)[0], _pair(layer.stride or layer.kernel_size)[0]
            d = _pair(getattr(layer, "dilation", 1))[0]
            r_in, j_in = field_in.describe_size(), field_in.describe_jump()
            lines.append(
                f"  r = r_in + (k - 1)·d·j_in = {r_in} + ({k} - 1)·{d}·{j_in} = {field_out.describe_size()}"
            )
            lines.append(f"  j = j_in·s = {j_in}·{s} = {field_out.describe_jump()}")
        else:
            lines.append(
                f"  r: {field_in.describe_size()} -> {field_out.describe_size()}, "
                f"j: {field_in.describe_jump()} -> {field_out.describe_jump()}"
            )
    lines += ["", *_cost_lines(layer, inputs, output, captured["macs"])]
    return "\n".join(lines)


def _cost_lines(layer: nn.Module, inputs: tuple, output: Any, macs: int) -> list[str]:
    params = sum(p.numel() for p in layer.parameters())
    if isinstance(layer, nn.Conv2d) and isinstance(output, torch.Tensor):
        c, c_out, g = layer.in_channels, layer.out_channels, layer.groups
        k = "·".join(map(str, layer.kernel_size))
        bias = " + 1" if layer.bias is not None else ""
        h, w = output.shape[-2:]
        return [
            f"parameters = C'·(C·K·K/groups{bias}) = {c_out}·({c}·{k}/{g}{bias}) = {conv_params(layer):,}",
            f"MACs = H'·W'·C'·C·K·K/groups = {h}·{w}·{c_out}·{c}·{k}/{g} = {macs:,}",
            f"FLOPs = 2 x MACs = {2 * macs:,}",
        ]
    if isinstance(layer, nn.Linear):
        bias = " + 1" if layer.bias is not None else ""
        tokens = macs // (layer.in_features * layer.out_features)
        return [
            f"parameters = out·(in{bias}) = {layer.out_features}·({layer.in_features}{bias}) = {params:,}",
            f"MACs = tokens·in·out = {tokens}·{layer.in_features}·{layer.out_features} = {macs:,}",
            f"FLOPs = 2 x MACs = {2 * macs:,}",
        ]
    reason = {
        "MaxPool2d": "max pooling compares, it does not multiply",
        "AvgPool2d": "one accumulate per window element: outputs·k·k",
        "AdaptiveAvgPool2d": "one accumulate per input element",
        "BatchNorm2d": "folded into the neighbouring convolution at inference",
    }.get(type(layer).__name__, "docs/analysis.md lists what each layer type counts")
    return [f"parameters = {params:,}", f"MACs = {macs:,} ({reason})"]
