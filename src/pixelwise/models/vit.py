"""Vision Transformer (Dosovitskiy et al., 2020, https://arxiv.org/abs/2010.11929).

An image is cut into p x p patches, each patch is linearly embedded (a p x p conv with
stride p), a learned class token is prepended, learned position embeddings are added,
and a stack of pre-norm transformer blocks mixes the tokens:

    x = x + MSA(LN(x));    x = x + MLP(LN(x))

The class token after a final LayerNorm is classified by a linear head.

Layout and initialisation follow torchvision's ``VisionTransformer``: state-dict keys
and parameter counts equal ``torchvision.models.vit_b_16`` for the same ``image_size``.

Input sizes. Position embeddings are learned for an ``image_size`` x ``image_size``
grid; for another input size they are bicubically interpolated to the new patch grid
(as torchvision's ``interpolate_embeddings``; the class token's is kept). Sides that are
not a multiple of the patch size are zero-padded on the right and bottom up to the next
multiple (zero is the mean of normalised inputs), so any size of at least one pixel
works and the patch grid is ``ceil(H / p) x ceil(W / p)``.

As a segmentation encoder a ViT is single-scale: ``forward_pyramid`` returns one map,
the patch tokens reshaped to ``(N, dim, ceil(H / p), ceil(W / p))`` at stride p.

``drop_path_rate`` switches on stochastic depth (Huang et al., 2016; DeiT's and timm's
ViT recipes): in training each block's two residual branches are dropped per sample
with a probability rising linearly from 0 at the first block to the rate at the last;
it has no parameters, so the state-dict keys (and torchvision's weights) are unchanged.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from functools import partial

import torch
from torch import nn
from torch.nn import functional as F

from .base import Classifier, FeatureLevel, ModelSpec
from .layers import drop_path, drop_path_rates

LayerNorm = partial(nn.LayerNorm, eps=1e-6)


class SelfAttention(nn.Module):
    """Multi-head self-attention, with ``nn.MultiheadAttention``'s parameter names.

    For each of h heads of width d = dim / h:
    ``softmax(Q Kᵀ / √d) V`` with ``[Q, K, V] = x W_inᵀ + b_in`` split in three;
    the heads are concatenated and mixed by ``out_proj``. ``in_proj_weight`` stacks
    W_Q, W_K, W_V as one (3·dim, dim) matrix, which is what keeps torchvision's keys.
    """

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} must be divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.dropout = dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, length, dim = x.shape
        q, k, v = F.linear(x, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        # (n, length, dim) -> (n, heads, length, dim / heads)
        q, k, v = (t.view(n, length, self.num_heads, -1).transpose(1, 2) for t in (q, k, v))
        dropout = self.dropout if self.training else 0.0
        x = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)
        return self.out_proj(x.transpose(1, 2).reshape(n, length, dim))


def mlp(dim: int, hidden_dim: int, dropout: float) -> nn.Sequential:
    """Linear → GELU → dropout → linear → dropout; indices 0 and 3 hold torchvision's weights."""
    layers = nn.Sequential(
        nn.Linear(dim, hidden_dim),
        nn.GELU(),
        nn.Dropout(dropout),
        nn.Linear(hidden_dim, dim),
        nn.Dropout(dropout),
    )
    for linear in (layers[0], layers[3]):
        nn.init.xavier_uniform_(linear.weight)
        nn.init.normal_(linear.bias, std=1e-6)
    return layers


class EncoderBlock(nn.Module):
    """One pre-norm transformer block: ``x + MSA(LN(x))`` then ``x + MLP(LN(x))``."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_dim: int,
        dropout: float,
        attention_dropout: float,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.ln_1 = LayerNorm(dim)
        self.self_attention = SelfAttention(dim, num_heads, attention_dropout)
        self.dropout = nn.Dropout(dropout)
        self.ln_2 = LayerNorm(dim)
        self.mlp = mlp(dim, mlp_dim, dropout)
        self.drop_path = drop_path(drop_path_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.dropout(self.self_attention(self.ln_1(x))))
        return x + self.drop_path(self.mlp(self.ln_2(x)))


class Encoder(nn.Module):
    """Position embeddings, the blocks, and the final LayerNorm."""

    def __init__(
        self,
        grid_size: int,
        num_layers: int,
        num_heads: int,
        dim: int,
        mlp_dim: int,
        dropout: float,
        attention_dropout: float,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.grid_size = grid_size
        # One embedding for the class token, then one per patch of the square grid.
        self.pos_embedding = nn.Parameter(torch.empty(1, grid_size**2 + 1, dim).normal_(std=0.02))
        self.dropout = nn.Dropout(dropout)
        blocks = OrderedDict(
            (
                f"encoder_layer_{i}",
                EncoderBlock(dim, num_heads, mlp_dim, dropout, attention_dropout, rate),
            )
            for i, rate in enumerate(drop_path_rates(drop_path_rate, num_layers))
        )
        self.layers = nn.Sequential(blocks)
        self.ln = LayerNorm(dim)

    def position_embedding(self, grid_h: int, grid_w: int) -> torch.Tensor:
        """Embeddings for a ``grid_h x grid_w`` patch grid, bicubically resized if needed."""
        if (grid_h, grid_w) == (self.grid_size, self.grid_size):
            return self.pos_embedding
        class_pos, patch_pos = self.pos_embedding[:, :1], self.pos_embedding[:, 1:]
        dim = patch_pos.shape[-1]
        patch_pos = patch_pos.transpose(1, 2).reshape(1, dim, self.grid_size, self.grid_size)
        patch_pos = F.interpolate(
            patch_pos, size=(grid_h, grid_w), mode="bicubic", align_corners=True
        )
        patch_pos = patch_pos.reshape(1, dim, grid_h * grid_w).transpose(1, 2)
        return torch.cat([class_pos, patch_pos], dim=1)

    def forward(self, tokens: torch.Tensor, grid_h: int, grid_w: int) -> torch.Tensor:
        tokens = tokens + self.position_embedding(grid_h, grid_w)
        return self.ln(self.layers(self.dropout(tokens)))


class VisionTransformer(Classifier):
    """Patch embedding ``conv_proj`` → class token → ``encoder`` → ``heads`` on the class token.

    ``forward_features`` returns all tokens after the final LayerNorm, shape
    ``(N, 1 + patches, dim)``, class token first; ``forward_head`` classifies token 0.
    With ``representation_size`` the head has torchvision's extra linear → tanh layer.
    """

    def __init__(
        self,
        image_size: int,
        patch_size: int,
        num_layers: int,
        num_heads: int,
        dim: int,
        mlp_dim: int,
        num_classes: int = 1000,
        in_channels: int = 3,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
        representation_size: int | None = None,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if not 0 <= drop_path_rate < 1:
            raise ValueError(f"drop_path_rate must be in [0, 1), got {drop_path_rate}")
        if image_size % patch_size:
            raise ValueError(
                f"image_size {image_size} must be a multiple of patch_size {patch_size} "
                f"(the position embeddings are learned on a square grid of whole patches)"
            )
        self.image_size = image_size
        self.patch_size = patch_size
        self.dim = dim
        self.conv_proj = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size)
        self.class_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.encoder = Encoder(
            image_size // patch_size,
            num_layers,
            num_heads,
            dim,
            mlp_dim,
            dropout,
            attention_dropout,
            drop_path_rate,
        )
        heads: OrderedDict[str, nn.Module] = OrderedDict()
        if representation_size is not None:
            heads["pre_logits"] = nn.Linear(dim, representation_size)
            heads["act"] = nn.Tanh()
        self.num_features = representation_size or dim
        heads["head"] = self._zero_linear(self.num_features, num_classes)
        self.heads = nn.Sequential(heads)
        self.num_classes = num_classes
        self.feature_info = [FeatureLevel("encoder", dim, patch_size)]

        fan_in = in_channels * patch_size**2
        nn.init.trunc_normal_(self.conv_proj.weight, std=math.sqrt(1 / fan_in))
        nn.init.zeros_(self.conv_proj.bias)
        if representation_size is not None:
            nn.init.trunc_normal_(self.heads.pre_logits.weight, std=math.sqrt(1 / dim))
            nn.init.zeros_(self.heads.pre_logits.bias)

    @staticmethod
    def _zero_linear(in_features: int, out_features: int) -> nn.Linear:
        """The classifier starts at zero, as the ViT paper does when fine-tuning on new classes."""
        linear = nn.Linear(in_features, out_features)
        nn.init.zeros_(linear.weight)
        nn.init.zeros_(linear.bias)
        return linear

    def grid_size(self, height: int, width: int) -> tuple[int, int]:
        """Patches per column and row: ``ceil(H / p), ceil(W / p)`` (the input is padded)."""
        return math.ceil(height / self.patch_size), math.ceil(width / self.patch_size)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        grid_h, grid_w = self.grid_size(*x.shape[-2:])
        p = self.patch_size
        x = F.pad(x, (0, grid_w * p - x.shape[-1], 0, grid_h * p - x.shape[-2]))
        # (n, c, h, w) -> (n, dim, grid_h, grid_w) -> (n, grid_h * grid_w, dim)
        patches = self.conv_proj(x).flatten(2).transpose(1, 2)
        class_token = self.class_token.expand(x.shape[0], -1, -1)
        return self.encoder(torch.cat([class_token, patches], dim=1), grid_h, grid_w)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.heads[:-1](features[:, 0])  # the class token (through pre_logits → tanh, if any)
        return x if pre_logits else self.heads.head(x)

    def forward_pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        """One level: the patch tokens as a ``(N, dim, ceil(H / p), ceil(W / p))`` map."""
        grid_h, grid_w = self.grid_size(*x.shape[-2:])
        patches = self.forward_features(x)[:, 1:]
        return [patches.transpose(1, 2).reshape(x.shape[0], self.dim, grid_h, grid_w)]

    def reset_classifier(self, num_classes: int) -> None:
        self.heads.head = self._zero_linear(self.num_features, num_classes)
        self.num_classes = num_classes

    def classifier_module_names(self) -> list[str]:
        return ["heads"]


def vit_b_16(
    num_classes: int = 1000,
    in_channels: int = 3,
    image_size: int = 224,
    dropout: float = 0.0,
    attention_dropout: float = 0.0,
    representation_size: int | None = None,
    drop_path_rate: float = 0.0,
) -> VisionTransformer:
    """ViT-B/16: 16 x 16 patches, 12 blocks of width 768, 12 heads, MLP 3072; 86.6M parameters."""
    return VisionTransformer(
        image_size=image_size,
        patch_size=16,
        num_layers=12,
        num_heads=12,
        dim=768,
        mlp_dim=3072,
        num_classes=num_classes,
        in_channels=in_channels,
        dropout=dropout,
        attention_dropout=attention_dropout,
        representation_size=representation_size,
        drop_path_rate=drop_path_rate,
    )


def vit_tiny_cifar(
    num_classes: int = 10,
    in_channels: int = 3,
    image_size: int = 32,
    dropout: float = 0.0,
    attention_dropout: float = 0.0,
    drop_path_rate: float = 0.0,
) -> VisionTransformer:
    """A ViT for 32 x 32 images: 4 x 4 patches (an 8 x 8 grid of 64 tokens + the class token),
    ViT-Ti's width (dim 192, 3 heads, MLP 768) at half its depth (6 blocks).

    Parameters: a block has ``12·dim² + 13·dim`` = 444,864 (attention ``4·dim² + 4·dim``,
    MLP ``8·dim² + 5·dim``, two LayerNorms ``4·dim``); six blocks 2,669,184, plus the
    patch embedding 9,408, class token 192, position embeddings 65·192 = 12,480, final
    LayerNorm 384 and the head ``193·classes``: 2,693,578 for 10 classes.
    """
    return VisionTransformer(
        image_size=image_size,
        patch_size=4,
        num_layers=6,
        num_heads=3,
        dim=192,
        mlp_dim=768,
        num_classes=num_classes,
        in_channels=in_channels,
        dropout=dropout,
        attention_dropout=attention_dropout,
        drop_path_rate=drop_path_rate,
    )


MODELS = {
    "vit_b_16": ModelSpec(
        vit_b_16,
        "classification",
        (3, 224, 224),
        "ViT-B/16, 16x16 patches, 12 blocks of 768 (86.6M params)",
    ),
    "vit_tiny_cifar": ModelSpec(
        vit_tiny_cifar,
        "classification",
        (3, 32, 32),
        "small ViT for 32x32 inputs: 4x4 patches, 6 blocks of 192 (2.7M params)",
    ),
}
