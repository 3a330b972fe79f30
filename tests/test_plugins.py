"""Your own dataset and model: by import path from a config (CLI, torchrun) and as
objects from Python (``pixelwise.fit``), with every output convention."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

import pixelwise
from pixelwise.cli import main
from pixelwise.errors import UserError
from pixelwise.models import ModelError, create_model
from pixelwise.plugins import PluginError, import_class
from pixelwise.run import RunDir

MODULE = '''
import torch
from torch.utils.data import Dataset


class Squares(Dataset):
    """Two classes of 16x16 grey images: a bright square (1) or noise alone (0)."""

    classes = ["plain", "square"]

    def __init__(self, split, root=None, size=96):
        if split == "test":
            raise FileNotFoundError("no test split")  # carved from train instead
        g = torch.Generator().manual_seed({"train": 0, "val": 1}[split])
        self.labels = torch.arange(size) % 2
        self.images = (torch.rand(size, 1, 16, 16, generator=g) * 80).to(torch.uint8)
        self.images[self.labels == 1, :, 4:12, 4:12] = 250

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.images[i], int(self.labels[i])


class TinyNet(torch.nn.Module):
    def __init__(self, num_classes=2, in_channels=1, width=8, output="tensor"):
        super().__init__()
        self.output = output
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(in_channels, width, 3, padding=1), torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
        )
        self.head = torch.nn.Linear(width, num_classes)

    def forward(self, x):
        logits = self.head(self.features(x))
        if self.output == "dict":
            return {"out": logits}
        if self.output == "tuple":
            return logits, logits.detach() * 0
        return logits
'''

CONFIG = """\
task: classification
data:
  format: squares_plugin:Squares
  options: {size: 96}
  in_channels: 1
  image_size: [16, 16]
  batch_size: 16
  augment: none
model:
  name: squares_plugin:TinyNet
  options: {width: 8}
optim: {name: adam, lr: 0.01, weight_decay: 0}
schedule: {name: constant}
train: {epochs: 3, tensorboard: false, report: false}
"""


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """A module of the user's, importable in this process and in child processes."""
    (tmp_path / "squares_plugin.py").write_text(textwrap.dedent(MODULE))
    (tmp_path / "cfg.yaml").write_text(CONFIG)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    sys.modules.pop("squares_plugin", None)


def test_a_path_that_does_not_import_is_one_line(plugin, capsys):
    with pytest.raises(PluginError, match="cannot import module 'nowhere_at_all'"):
        import_class("nowhere_at_all:Thing", "data.format", torch.nn.Module)
    with pytest.raises(PluginError, match="has no 'Missing'"):
        import_class("squares_plugin:Missing", "model.name", torch.nn.Module)
    with pytest.raises(PluginError, match="not a subclass of torch.nn.modules.module.Module"):
        import_class("squares_plugin:Squares", "model.name", torch.nn.Module)
    assert main(["train", "cfg.yaml", "data.format=nowhere_at_all:Thing"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "data.format=nowhere_at_all:Thing" in err
    with pytest.raises(ModelError, match="takes num_classes and in_channels"):
        create_model("squares_plugin:TinyNet", num_classes=2, depth=3)


def test_the_cli_trains_a_dataset_and_a_model_named_by_import_path(plugin, capsys):
    assert main(["train", "cfg.yaml", "--run-dir", "run"]) == 0
    run = RunDir(plugin / "run")
    records = run.metrics()
    assert len(records) == 3 and records[-1]["val/accuracy"] > 0.9  # squares are easy
    assert "test" in json_splits(plugin / "run")  # carved from train: the class has none
    model, card = run.load_model("best")  # rebuilt from the card, by import path
    assert card.model == "squares_plugin:TinyNet" and card.options == {"width": 8}
    predictor = pixelwise.load(plugin / "run")
    from squares_plugin import Squares

    images = Squares("val")
    assert [predictor.predict(images[i][0]).label for i in (0, 1)] == ["plain", "square"]


def json_splits(run_dir):
    import json

    return json.loads((run_dir / "splits.json").read_text())["splits"]


@pytest.mark.slow
def test_torchrun_imports_the_classes_in_every_process(plugin):
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "pixelwise", "train", "cfg.yaml", "device=cpu", "--run-dir", "ddp",
    ]  # fmt: skip
    env = {**os.environ, "PIXELWISE_QUIET": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(RunDir(plugin / "ddp").metrics()) == 3


@pytest.mark.parametrize("output", ["tensor", "dict", "tuple"])
def test_python_objects_train_with_every_output_convention(plugin, output):
    from squares_plugin import Squares, TinyNet

    torch.manual_seed(0)
    model = TinyNet(width=8, output=output)
    result, test = pixelwise.fit(
        model=model,
        train_data=Squares("train"),
        val_data=Squares("val"),
        test_data=Squares("val", size=16),
        overrides=["train.epochs=3", "optim.name=adam", "optim.lr=0.03", "optim.weight_decay=0",
                   "schedule.name=constant", "train.tensorboard=false", "train.report=false",
                   f"output_dir={plugin}"],
    )  # fmt: skip
    assert result.history[-1]["val/accuracy"] > 0.9
    assert test is not None and test.figures["accuracy"] > 0.9 and test.out.is_file()
    run = RunDir(result.run_dir)
    assert run.config().data.format == "python" and run.config().data.in_channels == 1
    fresh = RunDir(result.run_dir).load_weights(TinyNet(width=8, output=output))
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(),
                                                  model.state_dict().values()))  # fmt: skip


def test_validation_data_is_kept_when_val_split_is_the_test_split(plugin):
    """data.val_split=test (as cifar10_fast has it): the val data given is what is
    validated on, not dropped because no test data was given."""
    from squares_plugin import Squares, TinyNet

    overrides = ["train.epochs=1", "data.val_split=test", "train.tensorboard=false",
                 "train.report=false", f"output_dir={plugin}"]  # fmt: skip
    result, _ = pixelwise.fit(
        model=TinyNet(), train_data=Squares("train"), val_data=Squares("val"), overrides=overrides
    )
    assert "val/accuracy" in result.history[-1]


def test_two_datasets_for_one_split_are_refused(plugin):
    from squares_plugin import Squares, TinyNet

    overrides = ["train.epochs=1", "data.val_split=test", f"output_dir={plugin}"]
    message = (
        r"val_data and test_data both go to the 'test' split "
        r"\(data.val_split and data.test_split are both 'test'\)"
    )
    with pytest.raises(UserError, match=message):
        pixelwise.fit(
            model=TinyNet(),
            train_data=Squares("train"),
            val_data=Squares("val"),
            test_data=Squares("val", size=16),
            overrides=overrides,
        )
    assert not list(plugin.glob("*/checkpoints/*.pt"))  # refused before any training
