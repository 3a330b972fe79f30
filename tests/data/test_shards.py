"""WebDataset shards: ``pixelwise data shard`` writes them, ``data.format=webdataset``
reads them, each shard read by exactly one (process, worker)."""

from __future__ import annotations

import json

import pytest
import torch

from pixelwise.cli import main
from pixelwise.config import load_config
from pixelwise.data import build_datasets
from pixelwise.data.shards import ShardStream, reader_shards
from pixelwise.experiment import run_experiment

pytest.importorskip("webdataset")


def shard(tmp_path, config: str, *overrides: str, size: int = 50):
    out = tmp_path / "shards"
    assert (
        main(
            [
                "-q",
                "data",
                "shard",
                config,
                *overrides,
                "--out",
                str(out),
                "--shard-size",
                str(size),
            ]
        )
        == 0
    )
    return out


def test_digits_shard_and_train_one_epoch(tmp_path, capsys):
    out = shard(tmp_path, "digits", "data.val_fraction=0.1", "data.test_fraction=0.5")
    counts = json.loads((out / "counts.json").read_text())
    assert counts["train"] + counts["val"] + counts["test"] == 1797
    assert json.loads((out / "classes.json").read_text()) == [str(i) for i in range(10)]
    assert len(list(out.glob("train-*.tar"))) == -(-counts["train"] // 50)
    cfg = load_config(
        "digits",
        [
            f"output_dir={tmp_path / 'runs'}",
            "data.format=webdataset",
            f"data.root={out}",
            "data.shuffle_buffer=64",
            "data.image_size=[8, 8]",
            "data.batch_size=32",
            "train.epochs=1",
            "schedule.warmup_epochs=0",
            "train.tensorboard=false",
            "train.report=false",
            "train.learning_gif=false",
            "model.options={width: 8, dropout: 0.0}",
        ],
    )
    result, test = run_experiment(cfg, run_dir=tmp_path / "run")
    record = result.history[-1]
    assert 0.0 < record["train/loss"] < 3.0
    assert 0.2 < record["val/accuracy"] <= 1.0  # above chance (0.1) after one epoch
    assert test is not None and 0.2 < test.figures["accuracy"] <= 1.0


def test_segmentation_shards_round_trip(tmp_path):
    task = ["task=segmentation", "model.name=unet", "model.options={}"]
    overrides = [*task, "data.format=digits_segmentation", "data.num_samples=40"]
    overrides += ["data.val_fraction=0.25", "data.test_fraction=0"]
    out = shard(tmp_path, "digits", *overrides, size=8)
    original = build_datasets(load_config("digits", overrides))
    cfg = load_config(
        "digits",
        [
            *task,
            "data.format=webdataset",
            f"data.root={out}",
            "data.augment=none",
            "data.batch_size=8",
        ],
    )
    splits = build_datasets(cfg)
    assert splits.task == "segmentation" and splits.class_names == original.class_names
    val = splits.raw["val"]
    assert len(val) == len(original.raw["val"])
    for index in range(len(val)):
        image, mask = val[index]
        want_image, want_mask = original.raw["val"][index]
        assert torch.equal(image, want_image) and torch.equal(mask, want_mask)
    image, mask = next(iter(splits.datasets["train"]))
    assert image.dtype == torch.float32 and mask.dtype == torch.int64 and mask.dim() == 2


def test_readers_take_disjoint_shards_covering_everything_once(tmp_path):
    out = shard(tmp_path, "digits", "data.val_fraction=0", "data.test_fraction=0", size=100)
    urls = sorted(str(p) for p in out.glob("train-*.tar"))
    assert len(urls) == 18
    cfg = load_config("digits", ["data.format=webdataset", f"data.root={out}"]).data
    seen: list[int] = []
    taken: list[str] = []
    for rank in range(2):  # two simulated processes, each with two DataLoader workers
        stream = ShardStream(urls, None, cfg, seed=0, rank=rank, world_size=2)
        loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=2)
        seen += [label for _, label in loader]
        for worker in range(2):
            taken += reader_shards(urls, rank * 2 + worker, 4)
    assert sorted(taken) == urls  # each shard to exactly one (rank, worker)
    counts = json.loads((out / "counts.json").read_text())
    assert len(seen) == counts["train"] == 1797


def test_an_epoch_is_whole_batches_from_each_worker(tmp_path):
    out = shard(tmp_path, "digits", "data.val_fraction=0", "data.test_fraction=0", size=200)
    cfg = load_config(
        "digits",
        [
            "data.format=webdataset",
            f"data.root={out}",
            "data.batch_size=16",
            "data.samples_per_epoch=100",
        ],
    )
    splits = build_datasets(cfg)
    train = splits.datasets["train"]
    assert len(train) == 96  # 6 batches of 16
    loader = torch.utils.data.DataLoader(train, batch_size=16, num_workers=2)
    assert [len(labels) for _, labels in loader] == [16] * 6


def test_stream_needs_its_length_and_enough_shards(tmp_path):
    out = shard(tmp_path, "digits", "data.val_fraction=0", "data.test_fraction=0", size=2000)
    (out / "counts.json").unlink()
    with pytest.raises(ValueError, match="samples_per_epoch"):
        build_datasets(load_config("digits", ["data.format=webdataset", f"data.root={out}"]))
    cfg = load_config(
        "digits", ["data.format=webdataset", f"data.root={out}", "data.samples_per_epoch=64"]
    )
    train = build_datasets(cfg).datasets["train"]
    loader = torch.utils.data.DataLoader(train, batch_size=16, num_workers=2)
    with pytest.raises(ValueError, match="1 training shard"):
        next(iter(loader))


@pytest.mark.parametrize(
    "override", ["data.cache=true", "data.sampler=balanced", "train.save_every_steps=5"]
)
def test_what_a_stream_cannot_do_is_refused(override):
    with pytest.raises(ValueError, match=override.split("=")[0]):
        load_config("digits", ["data.format=webdataset", "data.root=x", override])
