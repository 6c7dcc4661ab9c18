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


def test_wandb_disabled_by_default_and_mode_is_checked(train_in_process):
    from ganscale.config import load_config
    from ganscale.errors import ConfigError

    run = train_in_process("quiet", "trainer.max_iters=2")
    assert not os.path.exists(os.path.join(run.run_dir, "wandb"))
    with pytest.raises(ConfigError, match="mode='cloud' unknown; choose one of: online, offline, disabled"):
        load_config([], ["wandb.mode=cloud"])
