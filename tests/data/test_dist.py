"""Two processes (gloo): disjoint slots, truthful worker env, equal batch counts, per-rank resume."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from shardkit import REPO, numbered_images, pack_arrays

pytestmark = pytest.mark.distributed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("init", ["torch", pytest.param("deepspeed", marks=pytest.mark.slow)])
def test_two_ranks_read_disjoint_data_and_resume_exactly(tmp_path, init):
    """Process group from torch.distributed (Lightning DDP) or deepspeed.init_distributed (DeepSpeed)."""
    if init == "deepspeed":
        pytest.importorskip("deepspeed", reason="deepspeed is not installed")
    # even: 8 shards x 6 samples for 2 ranks x 2 workers = 4 slots; uneven: 8 x 6 + one of 5
    pack_arrays(tmp_path / "s", numbered_images(48), np.arange(48) % 4, max_samples=6)
    pack_arrays(tmp_path / "u", numbered_images(53), np.arange(53) % 4, max_samples=6)
    script = os.path.join(os.path.dirname(__file__), "dist_stream_check.py")
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), WORLD_SIZE="2",
               PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    args = [sys.executable, script, str(tmp_path / "s"), str(tmp_path / "u")]
    procs = [subprocess.Popen(args + [str(tmp_path / f"r{r}.json"), init], stdout=subprocess.PIPE,
                              env=dict(env, RANK=str(r), LOCAL_RANK=str(r)), stderr=subprocess.STDOUT, text=True)
             for r in range(2)]
    logs = [p.communicate(timeout=280)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), "\n".join(logs)
    r0, r1 = (json.loads((tmp_path / f"r{r}.json").read_text()) for r in range(2))

    # split epoch: ranks and workers read disjoint parts that together are every sample once
    k0 = [k for b in r0["split_keys"] for k in b]
    k1 = [k for b in r1["split_keys"] for k in b]
    assert len(r0["split_keys"]) == len(r1["split_keys"]) == 48 // (2 * 4)
    assert sorted(k0 + k1) == list(range(48))
    # webdataset, inside spawned workers, sees (rank, world, worker, workers)
    assert r0["worker_info"] == [[0, 2, 0, 2], [0, 2, 1, 2]]
    assert r1["worker_info"] == [[1, 2, 0, 2], [1, 2, 1, 2]]
    assert r0["fork_equals_spawn"] and r1["fork_equals_spawn"]
    # uneven shards, same batch count per epoch on both ranks
    for mode in ("true", "false"):
        assert r0[f"num_batches_resampled={mode}"] == r1[f"num_batches_resampled={mode}"] == 2 * (53 // 6)
    # resume per rank: the gathered state holds both ranks, and each continues its own stream
    assert r0["state_ranks"] == r1["state_ranks"] == 2
    assert r0["resume_equal"] and r1["resume_equal"]
    assert r0["resume_keys"] != r1["resume_keys"]
