"""Training curves: <run>/plots/curves.png from metrics.csv and metrics.jsonl."""

from __future__ import annotations

import json
import os

import numpy as np
from PIL import Image

from ganscale.train.plots import read_eval_series, training_curves


def _assert_png_has_content(path: str) -> None:
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 300 and im.size[1] > 200
        pixels = np.asarray(im.convert("L"), dtype=np.float32)
    assert pixels.std() > 5  # lines and text, not a blank canvas


def test_curves_from_files(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    # the CSV logger writes one row per log call: two rows may share a step, with different columns
    (run / "metrics.csv").write_text(
        "D/fake,D/real,epoch,grad_norm/D,grad_norm/G,iter,loss/D,loss/G,lr/G,metrics/kl,step\n"
        "0.4,0.6,0,1.5,0.7,10,1.3,0.8,0.001,,10\n"
        ",,,,,,,,,0.9,10\n"
        "0.45,0.55,0,1.1,0.5,20,1.35,0.75,0.0005,,20\n")
    (run / "metrics.jsonl").write_text(
        json.dumps({"iter": 10, "kl": 0.9, "modes": 5, "note": "text is skipped"}) + "\n"
        + json.dumps({"iter": 20, "kl": 0.5, "modes": 6}) + "\n"
        + json.dumps({"iter": 20, "kl": 0.4, "modes": 8}) + "\n"  # iteration 20 redone after a resume
        + '{"iter": 30, "kl"')  # a line cut short by a crash
    series = training_curves(str(run))
    assert series == ["loss/D", "loss/G", "D/fake", "D/real", "grad_norm/D", "grad_norm/G", "lr/G",
                      "metrics/kl", "metrics/modes"]
    _assert_png_has_content(str(run / "plots" / "curves.png"))
    evals = read_eval_series(str(run / "metrics.jsonl"))
    assert evals["metrics/kl"] == ([10.0, 20.0], [0.9, 0.4]) and evals["metrics/modes"] == ([10.0, 20.0], [5.0, 8.0])
    empty = tmp_path / "empty"
    empty.mkdir()
    assert training_curves(str(empty)) == [] and not (empty / "plots").exists()


def test_a_short_run_draws_its_curves(tmp_path, monkeypatch):
    from ganscale.config import load_config
    from ganscale.train import run as run_mod
    from ganscale.train.curves import TrainingCurves

    monkeypatch.delenv(run_mod.RUN_DIR_ENV, raising=False)
    cfg = load_config([], [f"run.root={tmp_path}", "run.name=c", "trainer.max_iters=20", "trainer.log_every=5",
                           "trainer.eval_every=10", "trainer.plot_every=10", "trainer.progress_bar=false",
                           "data.batch_size=32"])
    run = run_mod.main(cfg)
    curves = next(cb for cb in run.trainer.callbacks if isinstance(cb, TrainingCurves))
    expected = {"loss/D", "loss/G", "loss/D/real", "loss/D/fake", "D/real", "D/fake", "grad_norm/D",
                "grad_norm/G", "lr/D", "lr/G", "metrics/kl", "metrics/modes"}
    assert expected <= set(curves.series), expected - set(curves.series)
    _assert_png_has_content(os.path.join(run.run_dir, "plots", "curves.png"))
