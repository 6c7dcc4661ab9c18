"""W&B in offline mode: the run folder holds the logged keys, images, config and artifacts; a
resumed run continues the same W&B run id."""

from __future__ import annotations

import glob
import os

import pytest

from opshelpers import fast_overrides, no_wandb_key, train_in_process, wandb_offline_summary  # noqa: F401 (fixtures too)

pytest.importorskip("wandb")

KEYS = {
    "loss/D/real", "loss/D/fake", "loss/G",          # losses per phase
    "D/real", "D/fake",                              # mean D(x) and D(G(z))
    "grad_norm/D", "grad_norm/G",                    # gradient norms per player
    "lr/D", "lr/G", "perf/samples_per_s",            # learning rates, throughput
    "skipped/D", "skipped/G",                        # skipped non-finite steps
    "metrics/kl", "metrics/modes",                   # evaluations
}


def test_wandb_offline_run_folder_and_resume(train_in_process, no_wandb_key, tmp_path, capsys):
    args = ["wandb.mode=online", "wandb.project=ganscale-test", "wandb.tags=[ring,ops]", "wandb.group=g",
            "wandb.log_checkpoints=true", "trainer.ckpt_every=10", "trainer.plot_every=10",
            "trainer.eval_every=10", "checkpoint.best_metric=kl"]
    run = train_in_process("w", *args, "trainer.max_iters=20")
    out = capsys.readouterr().out
    assert "W&B has no API key" in out and "wandb sync" in out  # offline, and how to upload later
    run_dir = run.run_dir
    with open(os.path.join(run_dir, "wandb_run_id")) as f:
        run_id = f.read().strip()
    assert glob.glob(os.path.join(run_dir, "wandb", f"offline-run-*-{run_id}"))  # inside the run directory

    s = wandb_offline_summary(run_dir)
    assert s["run_ids"] == [run_id]
    assert KEYS <= s["history_keys"], KEYS - s["history_keys"]
    assert "samples" in {k.split("/")[0] for k in s["history_keys"]}
    assert len(s["images"]) == 2  # sample plots at iterations 10 and 20
    assert {"trainer", "optim", "data", "guard", "wandb"} <= s["config_keys"]  # the resolved config
    assert s["tags"] == {"ring", "ops"}
    names = {a[0] for a in s["artifacts"]}
    assert names == {f"checkpoint-{run_id}"}
    aliases = set().union(*(a[1] for a in s["artifacts"]))
    assert {"latest", "iter_10", "iter_20"} <= aliases and "best" in aliases
    assert [a[2] for a in s["artifacts"]] == [["iter_00000010.ckpt"], ["iter_00000020.ckpt"]]

    # resume: same W&B run id, a second offline segment with the later steps
    train_in_process("w", *args, "trainer.max_iters=30")
    s2 = wandb_offline_summary(run_dir)
    assert s2["run_ids"] == [run_id, run_id]
    assert len(glob.glob(os.path.join(run_dir, "wandb", "offline-run-*"))) == 2
    assert len(s2["images"]) == 3


def test_wandb_mode_auto_resolution(no_wandb_key, monkeypatch):
    from ganscale.config import load_config
    from ganscale.errors import ConfigError
    from ganscale.ops.wandb import resolve_mode

    assert load_config([], []).wandb.mode == "auto"  # W&B is on by default
    for var in ("WANDB_MODE", "WANDB_DISABLED"):
        monkeypatch.delenv(var, raising=False)
    assert resolve_mode("auto") == "offline"  # no key anywhere (CI): never the network
    monkeypatch.setenv("WANDB_API_KEY", "0" * 40)  # a fake key: resolved only, no run is started
    assert resolve_mode("auto") == "online"
    monkeypatch.setenv("WANDB_MODE", "offline")  # W&B's own switch decides auto
    assert resolve_mode("auto") == "offline"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert resolve_mode("auto") == "disabled"
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.setenv("WANDB_DISABLED", "true")
    assert resolve_mode("auto") == "disabled"
    assert [resolve_mode(m) for m in ("online", "offline", "disabled")] == ["online", "offline", "disabled"]
    monkeypatch.delenv("WANDB_API_KEY")
    netrc = os.environ["NETRC"]  # the netrc entry `wandb login` writes counts as a key too
    with open(netrc, "w") as f:
        f.write("machine api.wandb.ai\n  login user\n  password " + "1" * 40 + "\n")
    os.chmod(netrc, 0o600)
    monkeypatch.delenv("WANDB_DISABLED")
    assert resolve_mode("auto") == "online"
    with pytest.raises(ConfigError, match="mode='cloud' unknown; choose one of: auto, online, offline, disabled"):
        load_config([], ["wandb.mode=cloud"])


def test_wandb_auto_without_key_logs_offline_and_prints_sync(train_in_process, no_wandb_key, monkeypatch, capsys):
    monkeypatch.delenv("WANDB_MODE", raising=False)  # the suite's hermetic WANDB_MODE=disabled, lifted here
    run = train_in_process("auto", "trainer.max_iters=2")
    out = capsys.readouterr().out
    assert "W&B logs offline" in out
    assert f"upload it with: wandb sync {os.path.join(run.run_dir, 'wandb', 'offline-run-*')}" in out  # at the end
    assert glob.glob(os.path.join(run.run_dir, "wandb", "offline-run-*", "run-*.wandb"))


def test_wandb_disabled_leaves_no_files(train_in_process):
    # the suite runs with WANDB_MODE=disabled (tests/conftest.py): auto follows it
    run = train_in_process("quiet", "trainer.max_iters=2")
    assert not os.path.exists(os.path.join(run.run_dir, "wandb"))
    run = train_in_process("off", "trainer.max_iters=2", "wandb.mode=disabled")
    assert not os.path.exists(os.path.join(run.run_dir, "wandb"))
