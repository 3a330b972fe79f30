"""Fine-tuning: stages per family, head/partial/full, gradual unfreezing, frozen BN, lr mult."""

from __future__ import annotations

import pytest
import torch

from pixelwise.checkpoint import load_checkpoint
from pixelwise.config import FinetuneConfig
from pixelwise.engine import fit
from pixelwise.engine.finetune import (
    FinetunePlan,
    keep_frozen_norms_in_eval,
    new_parameter_names,
    stage_parameter_names,
)
from pixelwise.models import ModelError, create_model


@pytest.mark.parametrize(
    ("name", "first_of_each_stage"),
    [
        (
            "resnet18",
            ["conv1.weight", "layer1.0.conv1.weight", "layer2.0.conv1.weight"]
            + ["layer3.0.conv1.weight", "layer4.0.conv1.weight"],
        ),
        ("small_cnn", ["stem.0.weight", "stages.1.0.0.weight", "stages.2.0.0.weight"]),
        (
            "vgg11_bn",  # five conv blocks, then fc6 + fc7
            ["features.0.weight", "features.4.weight", "features.8.weight"]
            + ["features.15.weight", "features.22.weight", "classifier.0.weight"],
        ),
        (
            "mobilenet_v2",
            ["features.0.0.weight", "features.2.conv.0.0.weight", "features.4.conv.0.0.weight"]
            + ["features.7.conv.0.0.weight", "features.14.conv.0.0.weight"],
        ),
    ],
)
def test_stages_follow_the_feature_pyramid(name, first_of_each_stage):
    model = create_model(name, num_classes=3)
    stages = stage_parameter_names(model)
    assert [s[0] for s in stages] == first_of_each_stage
    head = new_parameter_names(model)
    every = {n for n, _ in model.named_parameters()}
    assert head | {n for s in stages for n in s} == every  # every parameter has a place
    assert not head & {n for s in stages for n in s}


def _trainable(model) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_head_partial_full_and_gradual_unfreezing():
    model = create_model("resnet18", num_classes=3)
    stages = stage_parameter_names(model)
    head = FinetunePlan.for_model(model, FinetuneConfig("head"))
    head.apply(model, 0)
    assert _trainable(model) == {"fc.weight", "fc.bias"}

    partial = FinetunePlan.for_model(model, FinetuneConfig("partial", trainable_stages=2))
    partial.trainable = {n for n, _ in model.named_parameters()}
    partial.apply(model, 0)
    assert _trainable(model) == {"fc.weight", "fc.bias", *stages[3], *stages[4]}

    gradual = FinetunePlan(
        FinetuneConfig("head", unfreeze_after_epochs=2), partial.trainable, head.new, stages
    )
    assert [gradual.trainable_stages(e) for e in range(12)] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert gradual.apply(model, 2) == ["fine-tuning: the last 1 of 5 stages train from epoch 3"]
    assert gradual.apply(model, 3) == []
    assert _trainable(model) == {"fc.weight", "fc.bias", *stages[4]}

    full = FinetunePlan(FinetuneConfig("full"), partial.trainable, head.new, stages)
    full.apply(model, 0)
    assert _trainable(model) == partial.trainable


def test_frozen_batchnorm_stays_in_eval_mode_and_pretrained_lr_multiplier():
    model = create_model("small_cnn", num_classes=3)
    plan = FinetunePlan.for_model(model, FinetuneConfig("partial", 1, pretrained_lr_mult=0.1))
    plan.apply(model, 0)
    model.train()
    keep_frozen_norms_in_eval(model)
    assert not model.stem[1].training and model.stages[2][0][1].training
    mult = plan.lr_multipliers()
    assert mult["stem.0.weight"] == 0.1 and "fc.weight" not in mult


def test_fixed_parameters_of_the_model_stay_fixed():
    model = create_model("small_cnn", num_classes=3)
    model.stem[0].weight.requires_grad_(False)  # e.g. a fixed bilinear upsampling kernel
    plan = FinetunePlan.for_model(model, FinetuneConfig("full"))
    plan.apply(model, 0)
    assert not model.stem[0].weight.requires_grad


def test_a_parameter_declared_for_its_first_epochs_is_fixed_after_them(caplog):
    model = create_model("cifar_fastnet", num_classes=10, widths=(8, 8, 8), whiten_bias_epochs=2)
    plan = FinetunePlan.for_model(model, FinetuneConfig("full"))
    assert plan.limited == {"whiten.bias": 2}
    for epoch in range(2):
        assert plan.apply(model, epoch) == [] and model.whiten.bias.requires_grad
    changes = plan.apply(model, 2)
    assert changes == ["whiten.bias trains for the first 2 epochs only: fixed from epoch 3"]
    assert not model.whiten.bias.requires_grad
    assert plan.apply(model, 3) == []  # said once
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == plan.trainable - {"whiten.bias"}
    rebuilt = create_model("cifar_fastnet", num_classes=10, widths=(8, 8, 8), whiten_bias_epochs=2)
    resumed = FinetunePlan.for_model(rebuilt, FinetuneConfig("full"))  # as a resume builds it
    assert resumed.frozen_at(5) == {"whiten.bias"}


def test_a_whitening_bias_for_zero_epochs_is_refused():
    with pytest.raises(ModelError, match=r"whiten_bias_epochs must be at least 1 .*got 0"):
        create_model("cifar_fastnet", num_classes=10, whiten_bias_epochs=0)


def test_training_leaves_an_expired_parameter_as_its_last_epoch_left_it(small_digits, tmp_path):
    """A constant learning rate, so a run's first epoch is the same whatever its length:
    after two epochs the whitening bias is the one a one-epoch run ends with."""

    def trained(epochs: int, bias_epochs: int | None) -> dict[str, torch.Tensor]:
        options = f"{{widths: [8, 8, 8], whiten_bias_epochs: {bias_epochs or 'null'}}}"
        cfg = small_digits(
            "model.name=cifar_fastnet",
            f"model.options={options}",
            "schedule.name=constant",
            f"train.epochs={epochs}",
        )
        result = fit(cfg, run_dir=tmp_path / f"run-{epochs}-{bias_epochs}")
        return load_checkpoint(result.run_dir / "checkpoints" / "last.pt")["model"]

    one, two = trained(1, bias_epochs=1), trained(2, bias_epochs=1)
    assert torch.equal(one["whiten.bias"], two["whiten.bias"])
    assert not torch.equal(one["fc.weight"], two["fc.weight"])  # the rest trained on
    throughout = trained(2, bias_epochs=None)
    assert not torch.equal(throughout["whiten.bias"], two["whiten.bias"])


def test_head_training_from_pretrained_weights_changes_only_the_head(small_digits, tmp_path):
    pretrained = create_model("small_cnn", num_classes=10, in_channels=1, width=4, dropout=0.0)
    with torch.no_grad():
        for module in pretrained.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.fill_(0.1)  # recognisable statistics
    torch.save(pretrained.state_dict(), tmp_path / "pretrained.pt")
    cfg = small_digits(
        f"model.weights={tmp_path / 'pretrained.pt'}",
        "finetune.strategy=partial",
        "finetune.trainable_stages=0",
        "finetune.unfreeze_after_epochs=1",  # epoch 2 also trains the last stage
        "train.epochs=2",
    )
    result = fit(cfg, run_dir=tmp_path / "run")
    trained = load_checkpoint(result.run_dir / "checkpoints" / "last.pt")["model"]
    before = pretrained.state_dict()
    changed = {k for k in before if not torch.equal(before[k], trained[k])}
    assert {"fc.weight", "fc.bias"} <= changed
    assert "stages.2.0.0.weight" in changed and "stages.2.0.1.running_mean" in changed
    assert not any(k.startswith(("stem.", "stages.0.", "stages.1.")) for k in changed)


# --------------------------------------------------------------- segmentation families
# Each family: build options and the parameter prefixes that pretrained weights fill
# (written out here, not read from the model, so the declaration itself is checked).
# Built on the meta device: a plan needs names and flags, not values.
SEGMENTATION_FAMILIES = {
    "unet": ({"base_channels": 4}, ()),  # from scratch: everything is new
    "unet_on_encoder": ({"encoder": "small_cnn", "width": 4}, ("encoder.",)),
    "segnet": ({"input_norm": True}, ("encoder.",)),
    "fcn_vgg": ({}, ("encoder.", "decoder.fc6.", "decoder.fc7.")),  # fc6/fc7 from VGG16
    "fcn_vgg_narrow_fc": ({"fc_channels": 16}, ("encoder.",)),  # fresh fc6/fc7
    "fcn_resnet": ({"aux_loss": True}, ("backbone.",)),
    "deeplabv3": ({"aux_loss": True}, ("backbone.",)),
}
MODEL_NAMES = {
    "unet": "unet",
    "unet_on_encoder": "unet",
    "segnet": "segnet_compact",
    "fcn_vgg": "fcn8s",
    "fcn_vgg_narrow_fc": "fcn8s",
    "fcn_resnet": "fcn_resnet50",
    "deeplabv3": "deeplabv3_resnet50",
}


def _segmentation_model(family: str) -> torch.nn.Module:
    options, _ = SEGMENTATION_FAMILIES[family]
    with torch.device("meta"):
        return create_model(MODEL_NAMES[family], num_classes=3, **options)


def _trainable_with(model, strategy: str, stages: int = 1) -> set[str]:
    """What trains at epoch 0 under ``strategy`` (``model``: freshly built)."""
    plan = FinetunePlan.for_model(model, FinetuneConfig(strategy, trainable_stages=stages))
    plan.apply(model, 0)
    return _trainable(model)


@pytest.mark.parametrize("family", list(SEGMENTATION_FAMILIES))
def test_segmentation_head_partial_full_train_exactly_the_declared_parts(family):
    model = _segmentation_model(family)
    pretrained_prefixes = SEGMENTATION_FAMILIES[family][1]
    every = {n for n, _ in model.named_parameters()}
    pretrained = {n for n in every if n.startswith(pretrained_prefixes)}
    new = every - pretrained
    assert new and new_parameter_names(model) == new
    stages = stage_parameter_names(model)
    assert {n for stage in stages for n in stage} == pretrained  # stages cover the rest

    assert _trainable_with(model, "head") == new
    last = set(stages[-1]) if stages else set()
    assert _trainable_with(_segmentation_model(family), "partial", 1) == new | last
    assert _trainable_with(_segmentation_model(family), "full") == every


def test_segmentation_stages_follow_the_encoder_levels():
    fcn = _segmentation_model("fcn_vgg")  # VGG16 pools at features.4, 9, 16, 23, 30
    firsts = [stage[0] for stage in stage_parameter_names(fcn)]
    assert firsts == [f"encoder.features.{i}.weight" for i in (0, 5, 10, 17, 24)] + [
        "decoder.fc6.0.weight"  # fc6/fc7 after the last level join the last stage
    ]
    deeplab = _segmentation_model("deeplabv3")
    firsts = [stage[0] for stage in stage_parameter_names(deeplab)]
    assert firsts == ["backbone.conv1.weight"] + [
        f"backbone.layer{i}.0.conv1.weight" for i in (1, 2, 3, 4)
    ]
    segnet = _segmentation_model("segnet")  # VGG-BN levels: conv, BN, ReLU units per stage
    firsts = [stage[0] for stage in stage_parameter_names(segnet)]
    assert firsts == [f"encoder.features.{i}.weight" for i in (0, 7, 14, 24)]


def test_segnet_head_strategy_trains_its_new_decoder():
    """Regression: `head` on SegNet froze the randomly initialised decoder (and input
    norm) and trained only the final 3x3 layer."""
    model = create_model("segnet_compact", num_classes=3, input_norm=True)
    _trainable_with(model, "head")
    assert all(p.requires_grad for p in model.decoder.parameters())
    assert all(p.requires_grad for p in model.input_norm.parameters())
    assert not any(p.requires_grad for p in model.encoder.parameters())


def test_fcn_pretrained_fc6_fc7_are_not_new():
    """Regression: FCN-VGG's fc6/fc7, VGG16's classifier layers, counted as new, so
    `head` trained them and `pretrained_lr_mult` skipped them."""
    with torch.device("meta"):
        model = create_model("fcn32s", num_classes=3)
    fully_connected = {n for n, p in model.named_parameters() if p.shape[0] == 4096}
    assert len(fully_connected) == 4  # fc6 and fc7: weight and bias
    plan = FinetunePlan.for_model(model, FinetuneConfig("full", pretrained_lr_mult=0.1))
    assert all(plan.lr_multipliers().get(n) == 0.1 for n in fully_connected)
    trainable = _trainable_with(model, "head")
    assert trainable and not trainable & fully_connected
