"""Small building blocks that several model families share.

Kept deliberately few: a block belongs here only when more than one family needs it.
Layouts follow torchvision's so that state-dict keys stay compatible.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn
from torchvision.ops import StochasticDepth


def same_padding(kernel_size: int, dilation: int = 1) -> int:
    """Padding that keeps the spatial size at stride 1: ``dilation * (kernel_size - 1) // 2``.

    With stride ``s`` the output size is then ``ceil(size / s)`` for odd kernels.
    """
    return dilation * (kernel_size - 1) // 2


def conv_norm_act_layers(
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
) -> list[nn.Module]:
    """Convolution, normalisation, activation as a flat list: the one conv-norm-act unit.

    :class:`ConvNormAct` wraps these in a ``nn.Sequential``. The flat list is for
    sequences whose state-dict keys must stay flat for torchvision parity, where the
    units are spliced into one ``nn.Sequential``: VGG's ``features.0`` (conv),
    ``features.1`` (BN), and DeepLabV3's ``project.0``, ``project.1``.
    Padding defaults to :func:`same_padding`; the conv has a bias only when there is no
    norm layer (a bias before batch norm is cancelled by its mean subtraction), unless
    ``bias`` says otherwise (VGG-BN keeps it). Pass ``norm_layer=None`` or
    ``act_layer=None`` to leave either out; ``inplace=None`` builds activations that
    take no ``inplace`` argument (``nn.GELU``).
    """
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
    return layers


class ConvNormAct(nn.Sequential):
    """Convolution → normalisation → activation (:func:`conv_norm_act_layers`) as one
    ``nn.Sequential``.

    The children are indexed ``0, 1, 2`` exactly like torchvision's
    ``Conv2dNormActivation``, so a ``ConvNormAct`` stored at ``features.0`` gives the
    keys ``features.0.0.weight`` (conv) and ``features.0.1.running_mean`` (norm).
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
        super().__init__(
            *conv_norm_act_layers(
                in_channels,
                out_channels,
                kernel_size,
                stride,
                padding,
                groups,
                dilation,
                norm_layer,
                act_layer,
                inplace,
                bias,
            )
        )
        self.out_channels = out_channels


def drop_path(p: float) -> nn.Module:
    """Stochastic depth of a residual branch, or the identity for ``p = 0``."""
    return StochasticDepth(p, mode="row") if p > 0 else nn.Identity()


def drop_path_rates(rate: float, blocks: int) -> list[float]:
    """timm's linear decay rule: ``rate * i / (blocks - 1)`` for block ``i``."""
    return [rate * i / max(blocks - 1, 1) for i in range(blocks)]
