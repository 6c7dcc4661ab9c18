"""The shared low-level helpers: atomic writes (ganscale.utils.files) and ranks (ganscale.utils.ranks)."""

from __future__ import annotations

import json
import os

import pytest
import torch

from ganscale.utils import files, ranks


def test_atomic_write_replaces_in_one_step_and_a_failed_write_leaves_the_old_file(tmp_path):
    path = str(tmp_path / "sub" / "a.json")
    files.atomic_write_json(path, {"v": 1}, durable=True)  # creates the folder
    assert json.load(open(path)) == {"v": 1}
    with pytest.raises(RuntimeError):
        with files.atomic_path(path) as tmp:
            with open(tmp, "w") as f:
                f.write('{"v": 2, "half')
            raise RuntimeError("killed mid-write")
    assert json.load(open(path)) == {"v": 1}
    assert os.listdir(tmp_path / "sub") == ["a.json"]  # no temporary file left behind


def test_temporary_names_are_hidden_siblings_the_checkpoint_cleaner_finds(tmp_path):
    tmp = files.temp_path(str(tmp_path / "iter_00000010.ckpt"))
    assert os.path.dirname(tmp) == str(tmp_path)
    assert os.path.basename(tmp) == f".iter_00000010.ckpt{files.TEMP_MARK}{os.getpid()}"
    open(tmp, "w").close()
    from ganscale.ops.checkpoint.store import clean_stale

    assert clean_stale(str(tmp_path)) == [tmp]


def test_atomic_torch_save_returns_the_bytes_and_loads_back(tmp_path):
    path = str(tmp_path / "t.pt")
    n = files.atomic_torch_save({"w": torch.arange(4)}, path, durable=True)
    assert n == os.path.getsize(path) > 0
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.arange(4))


def test_ranks_without_a_process_group_or_launcher(monkeypatch):
    for k in (*ranks.LAUNCHER_RANK_VARS, "WORLD_SIZE"):
        monkeypatch.delenv(k, raising=False)
    assert (ranks.rank(), ranks.world_size(), ranks.local_rank(), ranks.launched_world_size()) == (0, 1, 0, 1)
    assert ranks.launched_rank_zero()

    class Trainer:  # a Lightning trainer answers for its processes
        global_rank, world_size = 3, 4

    assert (ranks.rank(Trainer()), ranks.world_size(Trainer())) == (3, 4)
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert not ranks.launched_rank_zero()
    assert (ranks.local_rank(), ranks.launched_world_size()) == (1, 2)
