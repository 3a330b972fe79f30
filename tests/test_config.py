from __future__ import annotations

import pytest
import yaml

from pixelwise.config import ConfigError, ExperimentConfig, load_config, save_config


def write(tmp_path, text: str):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_defaults_load_without_a_file():
    cfg = load_config()
    assert isinstance(cfg, ExperimentConfig)
    assert cfg.best_metric == "val/accuracy"


def test_yaml_and_overrides_with_types(tmp_path):
    path = write(tmp_path, "name: x\noptim:\n  lr: 0.1\ndata:\n  batch_size: 16\n")
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


def test_every_bundled_config_loads():
    from importlib import resources

    configs = [
        p for p in (resources.files("pixelwise") / "configs").iterdir() if p.name.endswith(".yaml")
    ]
    assert configs
    for path in configs:
        load_config(str(path))
