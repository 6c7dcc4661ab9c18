"""One rank of the 2-process data test (launched twice by test_dist.py, gloo on CPU).

    RANK=r WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=p python dist_stream_check.py SHARDS UNEVEN OUT.json torch|deepspeed

The process group comes from torch.distributed (as under Lightning DDP) or from
deepspeed.init_distributed (as under DeepSpeed). After joining it the script *removes* RANK and
WORLD_SIZE from its environment, as some launchers never set them: the data module must take the
rank from the process group, and spawned DataLoader workers (no process group) must still tell
webdataset the right rank.
"""

import json
import os
import sys

import torch
import torch.distributed as dist

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from shardkit import datamodule, take  # noqa: E402
from ganscale.data.shards.stream import ShardStream  # noqa: E402


class WorkerInfoProbe(ShardStream):
    """Adds to every batch what webdataset believes about the worker that made it."""

    def __iter__(self):
        from webdataset.utils import pytorch_worker_info

        for batch in super().__iter__():
            batch["info"] = torch.tensor(pytorch_worker_info())
            yield batch


def main(shards: str, uneven: str, out: str, init: str) -> None:
    if init == "deepspeed":
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
        import deepspeed

        deepspeed.init_distributed(dist_backend="gloo")
    else:
        dist.init_process_group("gloo")
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        os.environ.pop(k, None)
    rank = dist.get_rank()
    result = {"rank": rank}

    # 1. split epoch through spawned workers: every sample once over ranks x workers
    dm = datamodule(shards, "data.shards.resampled=false", "data.shards.start_method=spawn", num_workers=2)
    assert dm.rank == rank and dm.world_size == 2
    plan = dm.plan(rank, 2, max_epochs=1)
    batches = list(dm.make_loader(WorkerInfoProbe(plan, dm.decoder)))
    result["split_keys"] = [[int(k) for k in b["key"]] for b in batches]
    result["worker_info"] = sorted({tuple(b["info"].tolist()) for b in batches})
    fork_dm = datamodule(shards, "data.shards.resampled=false", "data.shards.start_method=fork", num_workers=2)
    forked = list(fork_dm.make_loader(ShardStream(plan, dm.decoder)))
    result["fork_equals_spawn"] = all(a["key"] == b["key"] and torch.equal(a["x"], b["x"])
                                      for a, b in zip(batches, forked)) and len(batches) == len(forked)

    # 2. uneven shards: the same number of batches per epoch on every rank, resampled and split
    for mode in ("true", "false"):
        dm = datamodule(uneven, f"data.shards.resampled={mode}", batch_size=3)
        stream = ShardStream(dm.plan(rank, 2, max_epochs=2), dm.decoder)
        result[f"num_batches_resampled={mode}"] = sum(1 for _ in dm.make_loader(stream, num_workers=0))

    # 3. resume: take k batches, save (a collective), continue; rebuild, load, compare per rank
    args = ("data.shards.shuffle_buffer=6", "data.shards.transform.crop=random", "data.shards.transform.crop_size=6")
    dm = datamodule(shards, *args, num_workers=2)
    it = iter(dm.train_dataloader())
    take(dm, it, 5 + rank)  # ranks may sit at different positions; the state holds both
    state = dm.state_dict()
    reference = take(dm, it, 4)
    dm2 = datamodule(shards, *args, num_workers=2)
    dm2.load_state_dict(state)
    resumed = take(dm2, dm2.train_dataloader(), 4)
    result["state_ranks"] = len(state["positions"])
    result["resume_equal"] = all(a["key"] == b["key"] and torch.equal(a["x"], b["x"])
                                 for a, b in zip(reference, resumed))
    result["resume_keys"] = [b["key"] for b in resumed]
    with open(out, "w") as f:
        json.dump(result, f)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:5])
