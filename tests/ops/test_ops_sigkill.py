"""A process SIGKILLed while writing a checkpoint leaves the previous one loadable, and the run
resumes from it."""

from __future__ import annotations

import csv
import os
import signal
import sys

import pytest

from ganscale.ops.checkpoint import store

from opshelpers import FAST, REPO, cli_env, fast_overrides, train_in_process  # noqa: F401 (fixtures too)

# Runs `ganscale train` in a process that kills itself with SIGKILL while writing the checkpoint of
# iteration KILL_AT: half-way through the bytes ("mid-write"), or after the rename but before the
# completion marker ("before-marker").
DRIVER = r"""
import io, os, signal, sys
import torch
from ganscale.ops.checkpoint import store

stage, kill_at = sys.argv[1], int(sys.argv[2])
real_save, real_marker = torch.save, store.write_marker

def iteration(obj):
    return obj.get("ganscale", {}).get("iteration") if isinstance(obj, dict) else None

def dying_save(obj, f, *args, **kwargs):
    if stage == "mid-write" and iteration(obj) == kill_at and hasattr(f, "fileno"):
        buf = io.BytesIO()
        real_save(obj, buf, *args, **kwargs)
        f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        f.flush(); os.fsync(f.fileno())
        os.kill(os.getpid(), signal.SIGKILL)
    return real_save(obj, f, *args, **kwargs)

def dying_marker(path, meta):
    if stage == "before-marker" and meta.get("iteration") == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    return real_marker(path, meta)

torch.save = dying_save
store.write_marker = dying_marker
from ganscale.cli import main
sys.exit(main(["train", *sys.argv[3:]]))
"""


@pytest.mark.parametrize("stage", ["mid-write", "before-marker"])
def test_sigkill_while_writing_keeps_previous_checkpoint_and_resumes(tmp_path, stage, train_in_process, capsys):
    import subprocess

    run_args = ["trainer.max_iters=30", "trainer.ckpt_every=10"]
    args = [*FAST, f"run.root={tmp_path}", "run.name=k", *run_args]
    killed = subprocess.run([sys.executable, "-c", DRIVER, stage, "20", *args], env=cli_env(), cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]

    ckpt_dir = tmp_path / "k" / "checkpoints"
    left = sorted(os.listdir(ckpt_dir))
    if stage == "mid-write":
        assert any(n.startswith(".iter_00000020.ckpt.tmp-") for n in left), left
        assert "iter_00000020.ckpt" not in left
    else:
        assert "iter_00000020.ckpt" in left and "iter_00000020.ckpt.complete" not in left
    # readers see only the previous, complete checkpoint ...
    assert store.list_checkpoints(str(ckpt_dir)) == [str(ckpt_dir / "iter_00000010.ckpt")]
    from ganscale.train.restore import load_module

    assert load_module(str(tmp_path / "k")).iteration == 10  # ... and it loads
    # metrics.csv holds what was logged before the kill (it is written row by row, not at the end)
    steps = lambda: [int(float(r["step"])) for r in csv.DictReader(open(tmp_path / "k" / "metrics.csv"))
                     if r.get("loss/G")]
    assert steps() == [5, 10, 15, 20]

    capsys.readouterr()
    resumed = train_in_process("k", *run_args)  # the same run again (in this process: no second start-up)
    out = capsys.readouterr().out
    assert "resuming from iter_00000010.ckpt" in out
    assert resumed.module.iteration == 30 and "finished 30 iterations" in out
    assert [store.iteration_of(p) for p in store.list_checkpoints(str(ckpt_dir))] == [10, 20, 30]
    assert not [n for n in os.listdir(ckpt_dir) if ".tmp-" in n]  # the leftovers were cleaned up
    assert store.read_marker(str(ckpt_dir / "iter_00000020.ckpt"))["iteration"] == 20
    assert steps() == [5, 10, 15, 20, 25, 30]  # the resumed run redid 15 and 20, once each
