"""Shared helpers and fixtures of the operations tests (checkpoints, preemption, guard, W&B,
Slurm). A plain module, not a conftest.py: tests/conftest.py is imported as `conftest` by the
core tests, and a second conftest module would shadow it. Test modules import what they use."""

from __future__ import annotations

import glob
import os
import struct
import subprocess
import sys
import time

import pytest
import torch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Small and quick: the toy ring, small batches, no plots or evaluations unless a test asks.
# Constant learning rates: these tests stop a run by giving it a shorter trainer.max_iters, and
# the default job's linear decay depends on max_iters (resuming with a scheduled lr, stopped the
# way preemption stops it, is tests/ops/test_ops_lr_schedule.py).
FAST = [
    "optim.G.schedule=constant",
    "optim.D.schedule=constant",
    "trainer.progress_bar=false",
    "trainer.eval_every=0",
    "trainer.plot_every=0",
    "trainer.log_every=5",
    "data.batch_size=32",
]


@pytest.fixture
def fast_overrides():
    return list(FAST)


@pytest.fixture
def train_in_process(tmp_path, monkeypatch, fast_overrides):
    """run(name, *overrides, callbacks=(), expect=None) -> Run, in this process.

    Every call gets a fresh GANSCALE_RUN_DIR (the first process of a run fixes it in the
    environment for its launcher children; here runs follow each other in one process)."""
    from ganscale.config import load_config
    from ganscale.train import run as run_mod

    def run(name: str, *overrides: str, callbacks=()):
        monkeypatch.delenv(run_mod.RUN_DIR_ENV, raising=False)
        cfg = load_config([], [*fast_overrides, f"run.root={tmp_path}", f"run.name={name}", *overrides])
        if not callbacks:
            return run_mod.main(cfg)
        r = run_mod.setup(cfg)
        r.trainer.callbacks.extend(callbacks)  # after ganscale's own: they see the finished iteration
        run_mod.fit(r)
        return r

    return run


def cli_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["OMP_NUM_THREADS"] = "1"
    env.pop("GANSCALE_RUN_DIR", None)
    return env


def run_cli(args: list[str], timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ganscale", *args], env=cli_env(), capture_output=True,
                          text=True, timeout=timeout, cwd=REPO, **kw)


def load_ckpt(path: str) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


# ----------------------------------------------------------------------------- W&B offline files
def wandb_records(path: str):
    """Protobuf records of an offline run file (run-<id>.wandb): a LevelDB-style log of 32 KiB
    blocks after a 7-byte header, each record split into FULL/FIRST/MIDDLE/LAST chunks."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = open(path, "rb").read()
    if len(data) < 7:
        return
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    pos, block, pending = 7, 32768, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        pos += 7
        if kind == 0 and length == 0:  # zero padding up to the end of the block
            pos += (block - pos % block) % block
            continue
        chunk, pos = data[pos:pos + length], pos + length
        if kind in (1, 4):  # FULL, LAST
            rec = pb.Record()
            rec.ParseFromString(pending + chunk if kind == 4 else chunk)
            pending = b""
            yield rec
        else:  # FIRST, MIDDLE
            pending += chunk


def _wait_for_exit_records(run_dir: str, timeout: float = 30.0) -> None:
    """wandb's service process may still be writing a run file when `finish()` has returned."""
    deadline = time.time() + timeout
    for f in glob.glob(os.path.join(run_dir, "wandb", "offline-run-*", "run-*.wandb")):
        while not any(r.WhichOneof("record_type") == "exit" for r in wandb_records(f)):
            if time.time() > deadline:
                raise AssertionError(f"{f} has no exit record after {timeout} s")
            time.sleep(0.2)


def wandb_offline_summary(run_dir: str) -> dict:
    """What the offline runs of a run directory recorded: run ids, history keys, config keys,
    artifacts (name, aliases, files), image files."""
    _wait_for_exit_records(run_dir)
    out = {"run_ids": [], "history_keys": set(), "config_keys": set(), "artifacts": [], "tags": set(),
           "images": sorted(glob.glob(os.path.join(run_dir, "wandb", "offline-run-*", "files", "media",
                                                   "images", "*.png")))}
    for f in sorted(glob.glob(os.path.join(run_dir, "wandb", "offline-run-*", "run-*.wandb"))):
        for rec in wandb_records(f):
            kind = rec.WhichOneof("record_type")
            if kind == "run":
                out["run_ids"].append(rec.run.run_id)
                out["config_keys"] |= {u.key for u in rec.run.config.update}
                out["tags"] |= set(rec.run.tags)
            elif kind == "history":
                out["history_keys"] |= {i.key or "/".join(i.nested_key) for i in rec.history.item}
            elif kind == "artifact":
                out["artifacts"].append((rec.artifact.name, set(rec.artifact.aliases),
                                         [c.path for c in rec.artifact.manifest.contents]))
    return out


@pytest.fixture
def no_wandb_key(monkeypatch, tmp_path):
    """No W&B credentials anywhere, whatever the machine has."""
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_IDENTITY_TOKEN_FILE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
