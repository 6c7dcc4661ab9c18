"""The evaluation is chosen by the kind of data (ganscale.metrics.evaluation), not by the data module."""

from __future__ import annotations

import os
from types import SimpleNamespace

import torch

from ganscale.config import load_config
from ganscale.data import build_datamodule
from ganscale.data.toy import sample_mixture
from ganscale.metrics.evaluation import EVALUATIONS, ImageEvaluation, ModeEvaluation, build_evaluation


def test_points_data_is_measured_by_mode_coverage_of_its_own_mixture(tmp_path):
    cfg = load_config([], ["config_name=ring"])
    dm = build_datamodule(cfg)
    ev = build_evaluation(cfg, dm, str(tmp_path))
    assert isinstance(ev, ModeEvaluation)
    assert not hasattr(dm, "evaluate") and not hasattr(dm, "plot")  # data modules only yield data

    def real(n, seed=None, **kw):  # the data itself covers every mode
        return sample_mixture(dm.means, dm.std, n, torch.Generator().manual_seed(seed or 0))

    m = ev.evaluate(real)
    assert m["modes"] == m["num_modes"] == len(dm.means)
    assert m["hq_fraction"] > 0.95
    one_mode = ev.evaluate(lambda n, **kw: dm.means[:1].repeat(n, 1))
    assert one_mode["modes"] == 1
    path = ev.plot(real, str(tmp_path / "plots" / "s.png"), title="t")
    assert os.path.getsize(path) > 0


def test_image_data_gets_the_image_evaluation_and_unknown_kinds_get_none(tmp_path):
    cfg = load_config([], ["config_name=ring", "eval.metrics=[]"])
    image = SimpleNamespace(info=SimpleNamespace(kind="image", shape=(1, 8, 8), num_classes=0))
    ev = build_evaluation(cfg, image, str(tmp_path))
    assert isinstance(ev, ImageEvaluation)
    ev.prepare()  # eval.metrics=[]: no feature network to load
    assert ev.evaluate(lambda n, **kw: torch.zeros(n, 1, 8, 8)) == {}
    assert sorted(EVALUATIONS.choices()) == ["image", "points", "text", "tokens"]  # text: game.condition=text
    assert build_evaluation(cfg, SimpleNamespace(info=SimpleNamespace(kind="audio"))) is None
    assert build_evaluation(cfg, SimpleNamespace(info=SimpleNamespace(kind="points"))) is None  # no mixture
