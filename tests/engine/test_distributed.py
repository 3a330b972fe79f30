"""Distributed data parallel on CPU: 2 processes with gloo, launched by torchrun.

The figures a 2-process run logs equal a single-process evaluation of the same weights
over the same data, and the padding ``DistributedSampler`` adds is not counted.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from pixelwise.engine import evaluate_run
from pixelwise.engine.distributed import ShardSampler, real_samples
from pixelwise.run import RunDir


@pytest.mark.parametrize("size", [7, 8, 1])
def test_shards_cover_every_sample_once_and_padding_is_known(size):
    shards = [list(ShardSampler(range(size), rank, 2)) for rank in range(2)]
    assert sorted(shards[0] + shards[1]) == list(range(size))
    # DistributedSampler pads with repeats; real_samples marks them: the rest is each
    # sample exactly once.
    real = []
    for rank in range(2):
        drawn = list(torch.utils.data.DistributedSampler(range(size), 2, rank, seed=3))
        real += drawn[: real_samples(size, rank, 2)]
    assert sorted(real) == list(range(size))


@pytest.mark.slow
def test_two_gloo_processes_log_the_figures_of_a_single_process(tmp_path):
    run_dir = tmp_path / "ddp"
    overrides = [
        f"output_dir={tmp_path / 'runs'}",
        "device=cpu",
        "train.epochs=1",
        "train.tensorboard=false",
        "train.report=false",
        "schedule.warmup_epochs=0",
        "data.image_size=[8, 8]",
        "data.val_fraction=0.1",  # 179 training images: 90 per process, one of them padding
        "data.test_fraction=0.8",
        "data.batch_size=30",
        "model.options={width: 4, dropout: 0.0}",
    ]
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "pixelwise", "train", "digits", *overrides, "--run-dir", str(run_dir),
    ]  # fmt: skip
    env = {**os.environ, "PIXELWISE_QUIET": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("run directory:") == 1  # rank 0 reports, alone

    (record,) = RunDir(run_dir).metrics()
    assert record["train/samples"] == 179  # not 180: the padded duplicate is left out
    single = evaluate_run(run_dir, split="val", checkpoint="last", write=False).figures
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "top5_accuracy", "support"):
        assert record[f"val/{key}"] == single[key], key
    assert record["val/loss"] == pytest.approx(single["loss"], rel=1e-6)
    assert sorted(p.name for p in (tmp_path / "runs").glob("*")) == []  # only --run-dir
