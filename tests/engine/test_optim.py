"""Parameter groups: no decay on norms and biases, lr multipliers, optimiser choice."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pixelwise.config import OptimConfig
from pixelwise.engine.optim import build_optimizer, no_decay_names, parameter_groups


def _model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2)
    )


def test_norm_weights_and_biases_get_no_weight_decay():
    model = _model()
    assert no_decay_names(model) == {"1.weight", "1.bias", "3.bias"}
    groups = parameter_groups(model, OptimConfig(weight_decay=0.1))
    decay = {g["weight_decay"]: len(g["params"]) for g in groups}
    assert decay == {0.1: 2, 0.0: 3}  # conv and linear weights decay


def test_decay_norm_and_bias_switch_puts_everything_in_one_group():
    groups = parameter_groups(_model(), OptimConfig(weight_decay=0.1, decay_norm_and_bias=True))
    assert len(groups) == 1 and groups[0]["weight_decay"] == 0.1


def test_lr_multipliers_and_include_select_groups():
    model = _model()
    mult = {"0.weight": 0.1}
    groups = parameter_groups(model, OptimConfig(lr=1.0), lr_mult=mult, include={"0.weight"})
    assert len(groups) == 1 and groups[0]["lr_mult"] == 0.1
    optimizer = build_optimizer(groups, OptimConfig(), lr=0.5)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.05)


def test_norm_lr_mult_scales_only_normalisation_parameters_on_top_of_other_multipliers():
    model = _model()
    cfg = OptimConfig(lr=1.0, norm_lr_mult=64.0)
    groups = parameter_groups(model, cfg, lr_mult={"1.bias": 0.5, "0.weight": 0.5})
    mult_of = {id(p): g["lr_mult"] for g in groups for p in g["params"]}
    assert mult_of[id(model[1].weight)] == 64.0
    assert mult_of[id(model[1].bias)] == 32.0  # fine-tuning multiplier times the norm one
    assert mult_of[id(model[0].weight)] == 0.5
    assert mult_of[id(model[3].bias)] == 1.0  # a bias outside a norm layer is not scaled
    optimizer = build_optimizer(groups, cfg, lr=0.01)
    lr_of = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    assert lr_of[id(model[1].weight)] == pytest.approx(0.64)


def test_frozen_parameters_are_left_out_unless_included():
    model = _model()
    model[0].weight.requires_grad_(False)
    names = {id(p) for g in parameter_groups(model, OptimConfig()) for p in g["params"]}
    assert id(model[0].weight) not in names
    everything = parameter_groups(
        model, OptimConfig(), include={n for n, _ in model.named_parameters()}
    )
    assert sum(len(g["params"]) for g in everything) == 5
    with pytest.raises(ValueError, match="every parameter of the model is frozen"):
        build_optimizer(parameter_groups(model, OptimConfig(), include=set()), OptimConfig(), 0.1)


@pytest.mark.parametrize(
    ("name", "cls"),
    [("sgd", torch.optim.SGD), ("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)],
)
def test_optimisers(name, cls):
    cfg = OptimConfig(name=name, nesterov=True, betas=[0.8, 0.99])
    optimizer = build_optimizer(parameter_groups(_model(), cfg), cfg, cfg.lr)
    assert isinstance(optimizer, cls)
    if name == "sgd":
        assert optimizer.defaults["nesterov"] and optimizer.defaults["momentum"] == 0.9
    else:
        assert optimizer.defaults["betas"] == (0.8, 0.99)


def test_layer_decay_scales_each_vit_block_by_decay_to_its_distance_from_the_head():
    from pixelwise.engine.optim import layer_decay_multipliers
    from pixelwise.models import create_model

    model = create_model("vit_tiny_cifar", num_classes=3)  # 6 blocks: layers 0..7
    mults = layer_decay_multipliers(model, 0.5)
    assert mults["conv_proj.weight"] == mults["encoder.pos_embedding"] == 0.5**7
    assert mults["class_token"] == 0.5**7
    assert mults["encoder.layers.encoder_layer_0.mlp.0.weight"] == 0.5**6
    assert mults["encoder.layers.encoder_layer_5.ln_1.weight"] == 0.5
    assert mults["encoder.ln.weight"] == mults["heads.head.weight"] == 1.0
    cfg = OptimConfig(lr=1.0, layer_decay=0.5)
    optimizer = build_optimizer(parameter_groups(model, cfg), cfg, 1.0)
    lr_of = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    assert lr_of[id(model.conv_proj.weight)] == 0.5**7
    assert lr_of[id(model.heads.head.weight)] == 1.0


def test_layer_decay_on_a_model_without_a_vit_is_refused():
    from pixelwise.config import ConfigError

    cfg = OptimConfig(layer_decay=0.7)
    with pytest.raises(ConfigError, match="optim.layer_decay"):
        parameter_groups(nn.Sequential(nn.Linear(2, 2)), cfg)
    with pytest.raises(ConfigError, match="optim.layer_decay"):
        from pixelwise.config import load_config

        load_config("digits", ["optim.layer_decay=1.5"])
