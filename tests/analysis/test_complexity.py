"""Parameters and MACs by formula: published figures, PyTorch's FLOP counter, hand counts."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from pixelwise.analysis import complexity, explain_layer, model_complexity
from pixelwise.models import create_model

# torchvision's published "GFLOPS" for its ImageNet weights, which count multiply-accumulates.
PUBLISHED_GMACS = {
    "alexnet": 0.71,
    "vgg16": 15.47,
    "resnet18": 1.81,
    "resnet50": 4.09,
    "mobilenet_v2": 0.30,
    "vit_b_16": 17.56,  # attention's Q Kᵀ and A V products included
}


def meta_model(name: str) -> nn.Module:
    """A zoo model on the meta device: shapes without weights, so counting VGG is instant."""
    with torch.device("meta"):
        return create_model(name)


@pytest.mark.parametrize("name", list(PUBLISHED_GMACS))
def test_total_macs_match_torchvision_published_figures(name):
    model = meta_model(name)
    result = complexity(model, (3, 224, 224))
    assert result.macs / 1e9 == pytest.approx(PUBLISHED_GMACS[name], rel=0.03)
    assert result.flops == 2 * result.macs
    assert result.params == sum(p.numel() for p in model.parameters())
    assert sum(row.params for row in result.rows) == result.params


@pytest.mark.parametrize("name", ["alexnet", "vgg16", "resnet18", "resnet50", "mobilenet_v2"])
def test_conv_and_linear_agree_with_torch_flop_counter(name):
    """``FlopCounterMode`` counts 2 FLOPs per MAC; on conv and linear layers we must agree."""
    model = meta_model(name).eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, 3, 224, 224, device="meta"))
    counts = {str(op): flops for op, flops in counter.get_flop_counts()["Global"].items()}
    theirs = sum(v for k, v in counts.items() if k in ("aten.convolution", "aten.addmm", "aten.mm"))
    ours = 2 * sum(r.macs for r in complexity(model).rows if r.type in ("Conv2d", "Linear"))
    assert ours == pytest.approx(theirs, rel=0.03)


def test_hand_counted_tiny_stack():
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),  # 8·(3·3·3 + 1) = 224 params; 8·8·8·27 = 13,824 MACs
        nn.BatchNorm2d(8),  # 16 params, folded into the conv: 0 MACs
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8, bias=False),  # 72; 4·4·8·9 = 1,152
        nn.AvgPool2d(2),  # 8x2x2 outputs, 4 accumulates each: 128
        nn.Flatten(),
        nn.Linear(32, 10),  # 10·(32 + 1) = 330; 320
    )
    result = complexity(model, (3, 8, 8))
    rows = {row.name: row for row in result.rows}
    assert (rows["0"].params, rows["0"].macs, rows["0"].output_shape) == (224, 13_824, (8, 8, 8))
    assert (rows["1"].params, rows["1"].macs) == (16, 0)
    assert (rows["3"].params, rows["3"].macs, rows["3"].output_shape) == (72, 1_152, (8, 4, 4))
    assert rows["4"].macs == 128
    assert (rows["6"].params, rows["6"].macs) == (330, 320)
    assert result.params == 224 + 16 + 72 + 330
    assert result.macs == 13_824 + 1_152 + 128 + 320
    assert (rows["0"].receptive_field, rows["3"].receptive_field, rows["3"].stride) == (
        "3",
        "5",
        "2",
    )
    assert rows["6"].receptive_field == "-"  # flat features have no spatial field


class TokenMixer(nn.Module):
    def __init__(self, dim: int = 16, heads: int = 4) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.attention(x, x, x, need_weights=False)[0])


def test_attention_counts_projections_and_both_products():
    length, dim = 5, 16
    result = complexity(TokenMixer(dim), (length, dim))  # input (1, L, E)
    rows = {row.name: row for row in result.rows}
    # Q, K, V and output projections: 4·L·E², then Q Kᵀ and A V: 2·L²·E.
    assert rows["attention"].macs == 4 * length * dim * dim + 2 * length * length * dim
    assert rows["attention"].params == 4 * dim * dim + 4 * dim
    assert rows["norm"].macs == 2 * length * dim  # variance and scale per element
    assert result.params == sum(p.numel() for p in TokenMixer(dim).parameters())


def test_parameters_of_layers_that_do_not_run_are_still_counted():
    class WithAuxHead(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Conv2d(1, 4, 3)
            self.aux = nn.Linear(4, 2)  # used only in training
            self.scale = nn.Parameter(torch.ones(1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.body(x) * self.scale

    result = complexity(WithAuxHead(), (1, 6, 6))
    notes = {row.name: row.note for row in result.rows}
    assert notes["aux"] == "not run in eval mode"
    assert notes["(model)"] == "held directly"
    assert result.params == 40 + 10 + 1


def test_model_mode_is_restored_and_bad_sizes_are_explained():
    model = create_model("small_cnn", num_classes=3, in_channels=1, width=4)
    model.train()
    complexity(model, (1, 16, 16))
    assert model.training
    with pytest.raises(ValueError, match="cannot run on an input of 3x16x16"):
        complexity(model, (3, 16, 16))


def test_model_complexity_by_name_uses_the_zoo_input_size():
    result = model_complexity("small_cnn", num_classes=10)
    assert result.input_size == (3, 32, 32)
    assert result.macs > 0


def test_explain_layer_fills_in_the_formulas():
    text = explain_layer(meta_model("vgg16"), "features.28", (3, 224, 224))
    assert "H' = floor((14 + 2·1 - 1·(3 - 1) - 1) / 1) + 1 = 14" in text
    assert "r = r_in + (k - 1)·d·j_in = 164 + (3 - 1)·1·16 = 196" in text
    assert "512·(512·3·3/1 + 1) = 2,359,808" in text
    assert "14·14·512·512·3·3/1 = 462,422,016" in text
    with pytest.raises(ValueError, match="did you mean"):
        explain_layer(meta_model("vgg16"), "features.280")
