"""Small building blocks that several model families share.

Kept deliberately few: a block belongs here only when more than one family needs it.
Layouts follow torchvision's so that state-dict keys stay compatible.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn


def same_padding(kernel_size: int, dilation: int = 1) -> int:
    """Padding that keeps the spatial size at stride 1: ``dilation * (kernel_size - 1) // 2``.

    With stride ``s`` the output size is then ``ceil(size / s)`` for odd kernels.
    """
    return dilation * (kernel_size - 1) // 2


class ConvNormAct(nn.Sequential):
    """Convolution → normalisation → activation, as one ``nn.Sequential``.

    The children are indexed ``0, 1, 2`` exactly like torchvision's
    ``Conv2dNormActivation``, so a ``ConvNormAct`` stored at ``features.0`` gives the
    keys ``features.0.0.weight`` (conv) and ``features.0.1.running_mean`` (norm).
    Padding defaults to :func:`same_padding`; the conv has a bias only when there is no
    norm layer (a bias before batch norm is cancelled by its mean subtraction).
    Pass ``norm_layer=None`` or ``act_layer=None`` to leave either out; ``inplace=None``
    builds activations that take no ``inplace`` argument (``nn.GELU``).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | None = None,
        groups: int = 1,
        dilation: int = 1,
        norm_layer: Callable[[int], nn.Module] | None = nn.BatchNorm2d,
        act_layer: Callable[..., nn.Module] | None = nn.ReLU,
        inplace: bool | None = True,
        bias: bool | None = None,
    ) -> None:
        if padding is None:
            padding = same_padding(kernel_size, dilation)
        if bias is None:
            bias = norm_layer is None
        layers: list[nn.Module] = [
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride=stride,
                padding=padding,
                dilation=dilation,
                groups=groups,
                bias=bias,
            )
        ]
        if norm_layer is not None:
            layers.append(norm_layer(out_channels))
        if act_layer is not None:
            layers.append(act_layer() if inplace is None else act_layer(inplace=inplace))
        super().__init__(*layers)
        self.out_channels = out_channels
