"""Past one machine: two "nodes" of one process each, started as torchrun and SLURM start them
(separate processes that find each other through the environment), train over gloo on
127.0.0.1 and give the losses one process gives on the same global batch."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import yaml

# Identical, deterministic views (whole-image crops, no flip, jitter or solarization) and no
# batch norm (a ViT, a one-layer projector): the loss then depends on the global batch only,
# which Barlow Twins' all-reduced cross-correlation sees whole on every rank.
CONFIG = {"log_every": 1, "rankme_samples": 0, "method_args": {"proj_layers": 1},
          "backbone_args": {"depth": 1, "patch_size": 2, "dim": 64, "heads": 2},
          "views": {"crop_scale": [1, 1], "flip_p": 0, "jitter_p": 0, "solarize_p": 0}}
ARGS = ["--method", "barlow_twins", "--data", "digits", "--classes", "0-1", "--backbone",
        "vit_tiny", "--epochs", "2", "--batch-size", "32", "--precision", "32",
        "--no-progress", "--no-eval"]  # 360 images: 11 steps an epoch


def pretrain(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("SLURM_", "MASTER_", "RANK", "LOCAL_", "GROUP_", "NODE_RANK",
                                  "WORLD_SIZE"))}
    return subprocess.Popen([sys.executable, "-m", "selfsup.cli", "pretrain", *ARGS, *args],
                            env={**clean, "OMP_NUM_THREADS": "1", **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> str:
    try:
        out, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 0, err[-3000:]
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_env(launcher: str, node: int, port: int) -> dict[str, str]:
    """What torchrun (``--nnodes 2 --nproc-per-node 1``) or ``srun`` (2 tasks on 2 nodes) sets in
    the process it starts on node ``node``."""
    common = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": "2"}
    if launcher == "torchrun":
        return {**common, "RANK": str(node), "GROUP_RANK": str(node), "NODE_RANK": str(node),
                "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1", "ROLE_RANK": str(node)}
    return {**common, "SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "1", "SLURM_NNODES": "2",
            "SLURM_PROCID": str(node), "SLURM_LOCALID": "0", "SLURM_NODEID": str(node),
            "SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "selfsup", "SLURM_NODELIST": "127.0.0.1"}


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, logged_losses) -> dict[int, float]:
    root = tmp_path_factory.mktemp("one")
    (root / "config.yaml").write_text(json.dumps(CONFIG))
    finish(pretrain(["--config", str(root / "config.yaml"), "--run-dir", str(root / "run")]))
    got = logged_losses(root / "run")
    assert max(got) == 22
    return got


# both launchers guard the whole-run DDP equality in the default suite (~15 s each, the
# one-process reference shared)
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs 2 CPU cores for 2 processes")
@pytest.mark.parametrize("launcher", ["torchrun", "slurm"])
def test_two_nodes_give_the_losses_of_one_process(one_process, tmp_path, launcher,
                                                  logged_losses):
    (tmp_path / "config.yaml").write_text(json.dumps(CONFIG))
    run_dir = tmp_path / "run"  # on a cluster: a shared file system every node writes to
    port = free_port()
    nodes = [pretrain(["--config", str(tmp_path / "config.yaml"), "--run-dir", str(run_dir),
                       "--num-nodes", "2", "--devices", "1"], node_env(launcher, node, port))
             for node in (0, 1)]
    outputs = [finish(proc) for proc in nodes]
    # one run of world size 2, not two runs of one: only global rank 0 reports
    assert ["selfsup run:" in out for out in outputs] == [True, False]
    got = logged_losses(run_dir)  # rank 0 alone logs each step, once
    assert sorted(got) == sorted(one_process)  # 16 + 16 rows a step: the same 22 steps
    for step, loss in one_process.items():
        assert got[step] == pytest.approx(loss, rel=1e-4), step
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["num_nodes"] == 2 and config["devices"] == 1
