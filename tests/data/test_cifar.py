from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from data_fixtures import cifar_batches, make_config

from pixelwise.data import FORMATS
from pixelwise.data.io import DataError


def build(cfg):
    return FORMATS[cfg.data.format](cfg.data, cfg.seed, None)


def test_cifar10_pickle_batches_with_own_test_split(tmp_path):
    cifar_batches(tmp_path, per_batch=4)
    cfg = make_config(format="cifar10", root=str(tmp_path), val_fraction=0.2)
    splits, names = build(cfg)
    assert names[:2] == ["airplane", "automobile"] and len(names) == 10
    assert [len(splits[s]) for s in ("train", "val", "test")] == [16, 4, 4]
    with (tmp_path / "cifar-10-batches-py" / "test_batch").open("rb") as f:
        batch = pickle.load(f)
    image, label = splits["test"][1]
    assert image.shape == (3, 32, 32) and image.dtype == torch.uint8
    # the pickle stores each image as 1024 red, 1024 green, 1024 blue values
    expected = torch.from_numpy(batch["data"][1].reshape(3, 32, 32))
    assert torch.equal(image, expected) and label == batch["labels"][1]


def test_cifar10_root_may_be_the_batches_folder_and_gray_is_converted(tmp_path):
    cifar_batches(tmp_path)
    cfg = make_config(
        format="cifar10",
        root=str(tmp_path / "cifar-10-batches-py"),
        in_channels=1,
        mean=[0.5],
        std=[0.5],
    )
    splits, _ = build(cfg)
    assert splits["train"][0][0].shape == (1, 32, 32)


def test_cifar100_fine_labels(tmp_path):
    cifar_batches(tmp_path, per_batch=3, hundred=True)
    cfg = make_config(format="cifar100", root=str(tmp_path), val_fraction=0)
    splits, names = build(cfg)
    assert len(names) == 100 and len(splits["train"]) == 15 and len(splits["test"]) == 3
    assert splits["train"][4][1] == 4


def test_missing_batch_is_named(tmp_path):
    cifar_batches(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DataError, match="data_batch_3"):
        build(make_config(format="cifar10", root=str(tmp_path)))


class _Payload:
    """Unpickling this calls os.system: the attack a crafted CIFAR batch carries."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        import os

        return (os.system, (self.command,))


def test_a_crafted_batch_is_refused_and_nothing_in_it_runs(tmp_path):
    cifar_batches(tmp_path)
    marker = tmp_path / "payload_ran"
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    batch.write_bytes(pickle.dumps({"data": _Payload(f"touch {marker}"), "labels": []}))
    with pytest.raises(DataError) as caught:
        build(make_config(format="cifar10", root=str(tmp_path)))
    assert str(caught.value).startswith(
        f"refused to load {batch}: unpickling it would call posix.system; nothing in it was run"
    )
    assert not marker.exists()


def test_data_check_refuses_a_crafted_meta_file_in_one_line(tmp_path, capsys):
    from pixelwise.cli import main

    cifar_batches(tmp_path)
    marker = tmp_path / "payload_ran"
    meta = tmp_path / "cifar-10-batches-py" / "batches.meta"
    meta.write_bytes(pickle.dumps({"label_names": _Payload(f"touch {marker}")}, protocol=2))
    config = tmp_path / "c.yaml"
    config.write_text(f"task: classification\ndata: {{format: cifar10, root: {tmp_path}}}\n")
    assert main(["-q", "data", "check", str(config)]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "refused to load" in line and "batches.meta" in line and "system" in line
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_batches_in_every_pickle_protocol_load(tmp_path, protocol):
    cifar_batches(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    for path in folder.iterdir():
        with path.open("rb") as f:
            content = pickle.load(f)
        raw = pickle.dumps(content, protocol=protocol)
        if protocol == 2:  # as the original release, written by numpy 1: numpy.core
            raw = raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
        path.write_bytes(raw)
    splits, names = build(make_config(format="cifar10", root=str(tmp_path), val_fraction=0))
    assert len(splits["train"]) == 20 and len(names) == 10
    assert splits["train"][0][0].shape == (3, 32, 32)


def test_a_batch_of_the_wrong_shape_is_named(tmp_path):
    cifar_batches(tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "test_batch"
    batch.write_bytes(pickle.dumps({"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}))
    with pytest.raises(DataError, match="test_batch: expected 'data' of shape"):
        build(make_config(format="cifar10", root=str(tmp_path)))
