"""Distributed data parallel on CPU: 2 processes with gloo, launched by torchrun.

The figures a 2-process run logs equal a single-process evaluation of the same weights
over the same data, and the padding ``DistributedSampler`` adds is not counted.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

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


def tiny_digits_overrides(tmp_path: Path) -> list[str]:
    """A one-epoch digits run small enough for two CPU processes in seconds."""
    return [
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


def assert_figures_of_a_single_process(run_dir: Path) -> None:
    (record,) = RunDir(run_dir).metrics()
    assert record["train/samples"] == 179  # not 180: the padded duplicate is left out
    single = evaluate_run(run_dir, split="val", checkpoint="last", write=False).figures
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "top5_accuracy", "support"):
        assert record[f"val/{key}"] == single[key], key
    assert record["val/loss"] == pytest.approx(single["loss"], rel=1e-6)


QUIET_ENV = {**os.environ, "PIXELWISE_QUIET": "1", "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
def test_two_gloo_processes_log_the_figures_of_a_single_process(tmp_path):
    run_dir = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "pixelwise", "train", "digits", *tiny_digits_overrides(tmp_path),
        "--run-dir", str(run_dir),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=QUIET_ENV, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("run directory:") == 1  # rank 0 reports, alone
    assert_figures_of_a_single_process(run_dir)
    assert sorted(p.name for p in (tmp_path / "runs").glob("*")) == []  # only --run-dir


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_two_nodes_with_c10d_rendezvous_log_the_figures_of_a_single_process(tmp_path):
    """Two torchrun agents, node ranks 0 and 1, meet at a c10d rendezvous on the loopback
    address as two machines would at rank 0's address; one process per "node"."""
    run_dir = tmp_path / "multinode"
    endpoint = f"127.0.0.1:{free_loopback_port()}"

    def node(rank: int) -> list[str]:
        return [
            sys.executable, "-m", "torch.distributed.run",
            "--nnodes=2", "--nproc_per_node=1", f"--node_rank={rank}",
            "--rdzv_backend=c10d", f"--rdzv_endpoint={endpoint}",
            f"--rdzv_id=pixelwise-test-{os.getpid()}-{tmp_path.name}",
            f"--rdzv_conf=is_host={rank == 0},join_timeout=120",
            "--local_addr=127.0.0.1", "--max_restarts=0",
            "-m", "pixelwise", "train", "digits", *tiny_digits_overrides(tmp_path),
            "--run-dir", str(run_dir),
        ]  # fmt: skip

    nodes = [
        subprocess.Popen(
            node(rank), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=QUIET_ENV
        )
        for rank in range(2)
    ]
    outputs = []
    try:
        for process in nodes:
            outputs.append(process.communicate(timeout=300))
    finally:
        for process in nodes:
            if process.poll() is None:
                process.kill()
                process.communicate()
    for process, (_, stderr) in zip(nodes, outputs, strict=True):
        assert process.returncode == 0, stderr[-3000:]
    stdout = "".join(out for out, _ in outputs)
    assert stdout.count("run directory:") == 1  # global rank 0 reports, alone
    assert_figures_of_a_single_process(run_dir)
    assert sorted(p.name for p in (tmp_path / "runs").glob("*")) == []  # only --run-dir
