from __future__ import annotations

import dataclasses
import os
import typing

import pytest
import torch
import yaml

from pixelwise.config import (
    RESULT_NEUTRAL_KEYS,
    ConfigError,
    DataConfig,
    ExperimentConfig,
    LossTerm,
    MissingConfigError,
    bundled_config_names,
    config_differences,
    dump_config,
    load_config,
    resolve_config,
    result_changing_differences,
    save_config,
    to_dict,
)
from pixelwise.errors import MissingFileError
from pixelwise.models import create_model

MINIMAL = "task: classification\ndata:\n  format: digits\n"


def write(tmp_path, text: str):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_defaults_load_without_a_file():
    cfg = load_config()
    assert isinstance(cfg, ExperimentConfig)
    assert cfg.best_metric == "val/accuracy"


def test_yaml_and_overrides_with_types(tmp_path):
    path = write(
        tmp_path,
        "name: x\ntask: classification\noptim:\n  lr: 0.1\ndata:\n  format: digits\n  batch_size: 16\n",
    )
    cfg = load_config(
        path,
        ["optim.lr=0.01", "data.batch_size=64", "data.image_size=[8, 12]", "optim.nesterov=true"],
    )
    assert cfg.optim.lr == 0.01
    assert cfg.data.batch_size == 64
    assert cfg.data.image_size == [8, 12]
    assert cfg.optim.nesterov is True
    assert cfg.name == "x"


def test_int_is_accepted_for_float_but_not_the_reverse(tmp_path):
    assert load_config(None, ["optim.lr=1"]).optim.lr == 1.0
    with pytest.raises(ConfigError, match=r"'data.batch_size' must be int, got 6.5"):
        load_config(None, ["data.batch_size=6.5"])


def test_unknown_key_names_key_file_and_nearest(tmp_path):
    path = write(tmp_path, "optim:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert str(path) in message
    assert "optim.lrr" in message
    assert "did you mean optim.lr" in message


def test_unknown_section_and_override_key():
    with pytest.raises(ConfigError, match="unknown key 'optimizer'.*did you mean optim"):
        load_config(None, ["optimizer.lr=0.1"])
    with pytest.raises(
        ConfigError, match="command-line overrides.*unknown key 'data.batchsize'.*data.batch_size"
    ):
        load_config(None, ["data.batchsize=3"])


def test_wrong_type_names_key():
    with pytest.raises(ConfigError, match=r"'optim.lr' must be float, got 'fast'"):
        load_config(None, ["optim.lr=fast"])
    with pytest.raises(ConfigError, match=r"'data.image_size' must be list\[int\]"):
        load_config(None, ["data.image_size=32"])


def test_literal_choices_suggest_nearest():
    with pytest.raises(
        ConfigError,
        match=r"'optim.name' must be one of sgd, adam, adamw, got 'adamm'; did you mean 'adam'",
    ):
        load_config(None, ["optim.name=adamm"])


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("optim.lr=-1", "optim.lr"),
        ("data.batch_size=0", "data.batch_size"),
        ("train.epochs=0", "train.epochs"),
        ("data.val_fraction=0.9", "data.val_fraction"),
        ("loss.label_smoothing=1.5", "loss.label_smoothing"),
        ("data.image_size=[32]", "data.image_size"),
        ("optim.momentum=0", "optim.nesterov"),
    ],
)
def test_impossible_values_are_rejected(override, key):
    extra = ["optim.nesterov=true"] if key == "optim.nesterov" else []
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(None, [override, *extra])


def test_malformed_override_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, ["optim.lr"])
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_saved_config_round_trips(tmp_path):
    cfg = load_config(None, ["optim.lr=0.02", "loss.terms=[{name: cross_entropy, weight: 0.5}]"])
    save_config(cfg, tmp_path / "config.yaml")
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["optim"]["lr"] == 0.02
    again = load_config(tmp_path / "config.yaml")
    assert again == cfg


# --------------------------------------------------------------------------- sections
def test_each_section_checks_its_own_fields_with_unchanged_messages():
    """Every dataclass section owns a ``check``; the driver prefixes section and source."""

    def sections(cls):
        yield cls
        for f in dataclasses.fields(cls):
            tp = typing.get_type_hints(cls)[f.name]
            inner = typing.get_args(tp)[0] if typing.get_origin(tp) is list else tp
            if dataclasses.is_dataclass(inner):
                yield from sections(inner)

    assert all(callable(getattr(cls, "check", None)) for cls in sections(ExperimentConfig))
    failures = []
    DataConfig(batch_size=0).check(lambda ok, key, message: ok or failures.append(key))
    assert failures == ["batch_size"]
    with pytest.raises(ConfigError) as err:
        load_config(None, ["data.batch_size=0"])
    assert str(err.value) == (
        "<defaults> + command-line overrides: 'data.batch_size' must be >= 1, got 0"
    )


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.early_stopping.patience=0", "'train.early_stopping.patience' must be >= 1"),
        (
            "loss.terms=[{name: dice}, {name: focal, weight: -1}]",
            r"'loss.terms\[1\].weight' must be >= 0, got -1.0",
        ),
        ("eval.topk=0", "'eval.topk' must be >= 1, got 0"),
        ("name=a/b", "'name' must be a plain folder name"),
        ("eval.tta_translate=-1", "'eval.tta_translate' must be >= 0, got -1"),
        ("train.lookahead_decay=1.5", "'train.lookahead_decay' must be in"),
        (
            ("train.lookahead=true", "train.max_minutes=5"),
            "'train.lookahead' ramps over a known number of steps: not with train.max_minutes",
        ),
        (
            ("task=segmentation", "eval.tta_translate=1"),
            "'eval.tta_translate' is for classification",
        ),
    ],
)
def test_nested_sections_are_checked_with_their_path(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, list(override) if isinstance(override, tuple) else [override])


def test_loss_names_are_a_choice_like_every_other():
    assert typing.get_args(typing.get_type_hints(LossTerm)["name"]) == (
        "cross_entropy",
        "focal",
        "dice",
    )
    with pytest.raises(
        ConfigError,
        match=r"'loss.terms\[0\].name' must be one of cross_entropy, focal, dice, got 'dise'; "
        r"did you mean 'dice'",
    ):
        load_config(None, ["loss.terms=[{name: dise}]"])


@pytest.mark.parametrize("key", ["encoder", "encoder_weights"])
def test_encoder_inside_model_options_is_refused(key):
    with pytest.raises(ConfigError) as err:
        load_config(None, ["model.name=unet", f"model.options={{{key}: resnet18}}"])
    message = str(err.value)
    assert f"'model.options.{key}'" in message and f"model.{key}: resnet18" in message
    assert len(message.splitlines()) == 1
    assert load_config(None, ["model.encoder=resnet18"]).model.encoder == "resnet18"


# --------------------------------------------------------------------------- files
@pytest.mark.parametrize("text", ["", "# only a comment\n\n", "---\n"])
def test_an_empty_config_file_is_an_error_naming_it(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=f"{path}: the file is empty"):
        load_config(path)


def test_a_config_file_must_name_task_and_data_format(tmp_path):
    path = write(tmp_path, "name: x\noptim:\n  lr: 0.1\n")
    with pytest.raises(ConfigError, match=f"{path}: .*missing: task, data.format"):
        load_config(path)
    path = write(tmp_path, "task: segmentation\ndata:\n  root: x\n")
    with pytest.raises(ConfigError, match="missing: data.format"):
        load_config(path)
    assert load_config(write(tmp_path, MINIMAL)).data.format == "digits"


def test_a_yaml_syntax_error_is_one_line_with_file_line_and_column(tmp_path):
    path = write(tmp_path, "task: classification\ndata:\n  format: digits\n   batch_size: 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert message.startswith(f"{path}:4:")
    assert len(message.splitlines()) == 1
    with pytest.raises(
        ConfigError, match=r"override 'data.image_size=\[1,': the value is not valid YAML"
    ):
        load_config(None, ["data.image_size=[1,"])


def test_a_key_written_twice_is_refused(tmp_path):
    path = write(tmp_path, MINIMAL + "optim:\n  lr: 0.1\ndata:\n  batch_size: 3\n")
    with pytest.raises(ConfigError, match=f"{path}:6:1: .*duplicate key 'data'"):
        load_config(path)


# --------------------------------------------------------------------------- resolving
def test_load_config_takes_a_bundled_name_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_config("digits").name == "digits-cnn"
    assert load_config("digits.yaml") == load_config(resolve_config("digits"))
    with pytest.raises(MissingConfigError) as err:
        load_config("digitz")
    assert isinstance(err.value, MissingFileError)
    assert "bundled configs: " in str(err.value) and "digits" in str(err.value)
    assert "_camvid_data" not in str(err.value)  # blocks for base: are not recipes


def test_a_local_file_wins_over_a_bundled_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "digits").write_text(MINIMAL + "name: mine\n")
    assert load_config("digits").name == "mine"


# --------------------------------------------------------------------------- base:
def test_base_is_deep_merged_under_the_file_and_overrides(tmp_path):
    (tmp_path / "common").mkdir()
    (tmp_path / "common" / "data.yaml").write_text(
        "task: classification\ndata:\n  format: digits\n  image_size: [8, 8]\n"
        "  batch_size: 16\nmodel:\n  options: {width: 4, dropout: 0.1}\n"
    )
    (tmp_path / "opt.yaml").write_text("optim:\n  lr: 0.5\n  name: adam\n")
    path = write(
        tmp_path,
        "base: [common/data.yaml, opt]\nname: child\ndata:\n  batch_size: 4\n"
        "model:\n  options: {width: 8}\noptim:\n  lr: 0.2\n",
    )
    cfg = load_config(path, ["optim.lr=0.3"])
    assert cfg.name == "child"
    assert cfg.data.image_size == [8, 8]  # from the base
    assert cfg.data.batch_size == 4  # the file over the base
    assert cfg.model.options == {"width": 8, "dropout": 0.1}  # mappings merge
    assert cfg.optim.name == "adam"
    assert cfg.optim.lr == 0.3  # overrides over the file


def test_a_later_base_wins_and_lists_replace(tmp_path):
    (tmp_path / "a.yaml").write_text(MINIMAL + "  image_size: [8, 8]\n  mean: [0.1]\n  std: [1]\n")
    (tmp_path / "b.yaml").write_text("data:\n  image_size: [4, 6]\n")
    path = write(tmp_path, "base: [a, b]\ndata:\n  in_channels: 1\n")
    cfg = load_config(path)
    assert cfg.data.image_size == [4, 6]
    assert cfg.data.mean == [0.1]


def test_a_base_may_be_a_bundled_name(tmp_path):
    path = write(tmp_path, "base: camvid_unet\nname: mine\noptim:\n  lr: 0.01\n")
    cfg = load_config(path)
    reference = load_config("camvid_unet", ["name=mine", "optim.lr=0.01"])
    assert cfg == reference


def test_base_cycles_are_refused_naming_the_files(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b\n" + MINIMAL)
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match="include each other") as err:
        load_config(tmp_path / "a.yaml")
    assert "a.yaml -> " in str(err.value) and "b.yaml -> " in str(err.value)
    (tmp_path / "self.yaml").write_text("base: self\n" + MINIMAL)
    with pytest.raises(ConfigError, match="include each other"):
        load_config(tmp_path / "self.yaml")


def test_a_missing_or_wrong_base_is_named(tmp_path):
    path = write(tmp_path, "base: nowhere\n" + MINIMAL)
    with pytest.raises(MissingConfigError, match=f"{path}: base 'nowhere' not found"):
        load_config(path)
    path = write(tmp_path, "base: {a: 1}\n" + MINIMAL)
    with pytest.raises(ConfigError, match="'base' must be a config name"):
        load_config(path)


def test_a_bad_key_in_a_base_names_the_base_file(tmp_path):
    (tmp_path / "a.yaml").write_text("optim:\n  lrr: 0.1\n")
    path = write(tmp_path, "base: a\n" + MINIMAL)
    with pytest.raises(ConfigError, match=f"{tmp_path / 'a.yaml'}: unknown key 'optim.lrr'"):
        load_config(path)


def test_every_bundled_config_loads_and_shared_blocks_stay_shared():
    names = bundled_config_names()
    assert "digits" in names and not any(n.startswith("_") for n in names)
    configs = {name: load_config(name) for name in names}
    assert all(cfg.name != "run" for cfg in configs.values())  # every recipe names itself
    camvid = {n: c for n, c in configs.items() if n.startswith("camvid_")}
    assert len(camvid) == 4
    reference = dataclasses.asdict(configs["data_camvid"].data)
    native = {"crop_size", "eval_size", "eval_batch_size", "rare_class_crop", "rare_classes",
              "class_weight_power"}  # fmt: skip
    for name, cfg in camvid.items():
        data = dataclasses.asdict(cfg.data)
        different = {k for k in data if data[k] != reference[k]}
        allowed = {"image_size", "class_weights"} | (native if name == "camvid_native" else set())
        assert different <= allowed, name
    transfer = [c for n, c in configs.items() if n.startswith("cifar10_transfer_")]
    assert len(transfer) == 4 and all(c.data == transfer[0].data for c in transfer)
    assert configs["cifar10_transfer_scratch"].model.weights is None
    assert configs["cifar10_fast"].schedule.warmup_epochs == 2.3  # documented runs set it


def test_the_distillation_student_is_the_fast_recipe_at_a_tenth_of_a_cifar_vgg16():
    teacher, student = load_config("cifar10_fast"), load_config("cifar10_fast_student")
    for section in ("data", "loss", "optim", "schedule", "train", "eval"):
        assert getattr(student, section) == getattr(teacher, section), section
    assert student.model.name == teacher.model.name and student.distill.teacher

    def parameters(module: torch.nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())

    with torch.device("meta"):  # shapes only: VGG-16 is 134M parameters
        vgg16 = create_model("vgg16", num_classes=10)
        small = create_model(student.model.name, num_classes=10, **student.model.options)
    cifar_vgg16 = parameters(vgg16.features) + 512 * 10 + 10  # one 512 -> 10 classifier
    assert 14_000_000 < cifar_vgg16 < 15_000_000
    assert parameters(small) <= cifar_vgg16 / 10


# --------------------------------------------------------------------------- spellings
@pytest.mark.parametrize(
    ("override", "key", "expected"),
    [
        ("optim.lr=3e-4", "optim.lr", 3e-4),
        ("optim.lr=1e-3", "optim.lr", 1e-3),
        ("optim.lr=1E-3", "optim.lr", 1e-3),
        ("optim.lr=.5", "optim.lr", 0.5),
        ("optim.lr=2", "optim.lr", 2.0),
        ("optim.lr=+1.5e+0", "optim.lr", 1.5),
        ("optim.lr='3e-4'", "optim.lr", 3e-4),
        ("optim.weight_decay=0", "optim.weight_decay", 0.0),
        ("data.max_image_pixels=1_000_000", "data.max_image_pixels", 1_000_000),
        ("data.batch_size=010", "data.batch_size", 10),
        ("data.batch_size=0x10", "data.batch_size", 16),
        ("train.amp=off", "train.amp", "off"),
        ("train.amp=false", "train.amp", "off"),
        ("train.amp=bf16", "train.amp", "bf16"),
        ("train.ema=true", "train.ema", True),
        ("train.ema=True", "train.ema", True),
        ("train.ema=on", "train.ema", True),
        ("train.ema=yes", "train.ema", True),
        ("train.ema=off", "train.ema", False),
        ("train.ema=no", "train.ema", False),
        ("data.pin_memory=off", "data.pin_memory", False),
        ("data.pin_memory=null", "data.pin_memory", None),
        ("data.pin_memory=none", "data.pin_memory", None),
        ("data.pin_memory=None", "data.pin_memory", None),
        ("data.pin_memory=~", "data.pin_memory", None),
        ("data.pin_memory=", "data.pin_memory", None),
        ("data.hflip=.5", "data.hflip", 0.5),
        ("data.hflip=none", "data.hflip", None),
        ("data.root=none", "data.root", None),
        ("data.root=off", "data.root", "off"),
        ("data.augment=none", "data.augment", "none"),  # a preset name, not optional
        ("data.image_size=64,64", "data.image_size", [64, 64]),
        ("data.image_size=[64, 64]", "data.image_size", [64, 64]),
        ("data.image_size=64, 48", "data.image_size", [64, 48]),
        ("data.random_scale=0.5,2", "data.random_scale", [0.5, 2.0]),
        ("data.random_scale=[.5, 2e0]", "data.random_scale", [0.5, 2.0]),
        ("data.class_names=cat,dog", "data.class_names", ["cat", "dog"]),
        ("data.class_names=[no, off]", "data.class_names", ["no", "off"]),
        ("data.include_classes=3,", "data.include_classes", [3]),
        ("data.class_weights=1,2.5", "data.class_weights", [1.0, 2.5]),
        ("data.class_weights=median_frequency", "data.class_weights", "median_frequency"),
        ("data.class_weights=none", "data.class_weights", None),
        ("model.options={width: 8, dropout: 1e-1}", "model.options", {"width": 8, "dropout": 0.1}),
        ("train.early_stopping.mode=min", "train.early_stopping.mode", "min"),
        ("train.early_stopping.mode=none", "train.early_stopping.mode", None),
    ],
)
def test_override_spellings_people_use(override, key, expected):
    cfg = load_config(None, [override])
    value = cfg
    for part in key.split("."):
        value = getattr(value, part)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.lr=fast", r"'optim.lr' must be float, got 'fast'"),
        ("train.ema=maybe", r"'train.ema' must be bool, got 'maybe'"),
        ("data.batch_size=6.5", r"'data.batch_size' must be int, got 6.5"),
        (
            "train.amp=of",
            r"'train.amp' must be one of off, bf16, fp16, auto, got 'of'; did you mean",
        ),
        ("data.image_size=64,x", r"'data.image_size\[1\]' must be int, got 'x'"),
        ("name=1e3", r"'name' must be str, got 1000.0 \(float\) \(quote it"),
    ],
)
def test_spellings_that_still_cannot_work(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_yaml_files_read_scalars_by_yaml_1_2(tmp_path):
    path = write(
        tmp_path,
        MINIMAL + "optim:\n  lr: 3e-4\n  nesterov: on\n  betas: [.9, 0.99]\n"
        "train:\n  amp: off\n  ema: yes\n  channels_last: Off\n  epochs: 010\n",
    )
    cfg = load_config(path)
    assert cfg.optim.lr == 3e-4 and cfg.optim.betas == [0.9, 0.99]
    assert cfg.optim.nesterov is True
    assert cfg.train.amp == "off" and cfg.train.ema is True and cfg.train.channels_last is False
    assert cfg.train.epochs == 10


def test_strings_that_look_like_other_types_round_trip(tmp_path):
    cfg = load_config(
        None,
        [
            "name='1e3'",
            "data.root='off'",
            "data.list_file='yes'",
            "data.palette='010'",
            "data.class_names=['null', '2024-01-01', 'True', '.5', '0o7']",
            "data.num_classes=5",
        ],
    )
    assert cfg.name == "1e3" and cfg.data.class_names[0] == "null"
    save_config(cfg, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == cfg
    assert yaml.safe_load(dump_config(cfg)) == to_dict(cfg)  # YAML 1.1 readers agree


# --------------------------------------------------------------------------- warmup
def test_any_epoch_count_works_with_a_recipe_warmup():
    cfg = load_config("digits", ["train.epochs=1"])  # the recipe warms up for 1 epoch
    assert cfg.schedule.warmup_epochs == 1
    assert load_config(None, ["schedule.warmup_epochs=5", "train.epochs=2"]).train.epochs == 2


def test_warmup_fraction_is_one_of_two_lengths():
    cfg = load_config(None, ["schedule.warmup_fraction=0.1"])
    assert cfg.schedule.warmup_fraction == 0.1
    with pytest.raises(ConfigError, match="'schedule.warmup_fraction' and schedule.warmup_epochs"):
        load_config("digits", ["schedule.warmup_fraction=0.1"])
    assert load_config("digits", ["schedule.warmup_fraction=.1", "schedule.warmup_epochs=0"])
    with pytest.raises(ConfigError, match=r"'schedule.warmup_fraction' must be in \[0, 1\)"):
        load_config(None, ["schedule.warmup_fraction=1"])


# --------------------------------------------------------------------------- differences
def test_config_differences_lists_dotted_keys_with_both_values():
    saved = load_config("digits")
    new = load_config(
        "digits",
        [
            "optim.lr=0.01",
            "data.num_workers=2",
            "model.options={width: 8}",
            "loss.terms=[{name: focal}]",
            "train.early_stopping.patience=3",
        ],
    )
    differences = config_differences(saved, new)
    assert differences == [
        ("data.num_workers", 0, 2),
        ("model.options", {"width": 32, "dropout": 0.1}, {"width": 8}),
        (
            "loss.terms",
            [{"name": "cross_entropy", "weight": 1.0}],
            [{"name": "focal", "weight": 1.0}],
        ),
        ("optim.lr", 0.05, 0.01),
        ("train.early_stopping.patience", 10, 3),
    ]
    assert [d[0] for d in result_changing_differences(saved, new)] == [
        "model.options",
        "loss.terms",
        "optim.lr",
        "train.early_stopping.patience",
    ]
    assert config_differences(saved, load_config("digits")) == []


def test_result_neutral_keys_name_real_fields_and_leave_results_alone():
    saved = load_config("digits")
    keys = {key for key, _, _ in config_differences(saved, ExperimentConfig())}
    every_key = {key for key, _, _ in config_differences(ExperimentConfig(), _all_changed())}
    assert keys <= every_key
    assert every_key >= RESULT_NEUTRAL_KEYS
    for key in ("seed", "train.epochs", "train.amp", "optim.lr", "data.root", "task"):
        assert key not in RESULT_NEUTRAL_KEYS
    neutral = load_config(
        "digits",
        [
            "name=elsewhere",
            "output_dir=/tmp/x",
            "device=cpu",
            "train.report=false",
            "train.tensorboard=false",
            "train.log_every=7",
            "data.num_workers=2",
            "data.pin_memory=true",
            "data.persistent_workers=true",
            "data.eval_batch_size=500",
            "train.learning_gif=false",
            "train.gif_images=3",
        ],
    )
    assert len(config_differences(saved, neutral)) == 12
    assert result_changing_differences(saved, neutral) == []


def _all_changed() -> ExperimentConfig:
    """A config whose every leaf differs from the defaults' (to list every dotted key)."""

    def change(section):
        for f in dataclasses.fields(section):
            value = getattr(section, f.name)
            if dataclasses.is_dataclass(value):
                change(value)
            else:
                setattr(section, f.name, object())
        return section

    return change(ExperimentConfig())


def test_config_module_knows_where_the_bundled_configs_live():
    assert os.path.isfile(resolve_config("digits"))
