"""Config loading: composition, overrides, one error listing every problem, shipped YAMLs."""

import glob
import os
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from conftest import REPO, cli
from ganscale.config import RunConfig, config_from_dict, load_config, to_dict
from ganscale.config.default_job import default_job_path
from ganscale.errors import ConfigError

# run configs; configs/text/ holds text-encoder configs (their own schema, tests/test_text_encoder.py)
SHIPPED = sorted(p for p in glob.glob(os.path.join(REPO, "configs", "**", "*.yaml"), recursive=True)
                 if os.sep + "text" + os.sep not in p)


def test_defaults_are_valid():
    cfg = load_config()
    assert isinstance(cfg, RunConfig)
    assert cfg.data.kind == "toy" and cfg.data.toy.mixture == "ring"


@pytest.mark.parametrize("path", SHIPPED, ids=[os.path.relpath(p, REPO) for p in SHIPPED])
def test_every_shipped_config_loads_and_validates(path):
    cfg = load_config([path])
    assert isinstance(cfg, RunConfig)


IMAGE_CONFIGS = [p for p in SHIPPED if os.sep + "toy" + os.sep not in p and os.sep + "strategy" + os.sep not in p]

PAPER_DECAY = {"bigan.yaml", "ssl_gan.yaml"}  # the BiGAN and improved-gan authors decay their learning rates


@pytest.mark.parametrize("path", IMAGE_CONFIGS, ids=[os.path.relpath(p, REPO) for p in IMAGE_CONFIGS])
def test_image_configs_do_not_inherit_the_toy_recipe(path):
    """The shipped image configs set their own learning rates and length and keep a constant
    schedule (as in the papers they follow): nothing of the default job's ring recipe."""
    cfg = load_config([path])
    default = load_config([default_job_path()])
    raw = OmegaConf.load(path)
    for name in ("G", "D"):
        opt = getattr(cfg.optim, name)
        assert opt.schedule == "constant" or os.path.basename(path) in PAPER_DECAY, (path, name)
        # an lr equal to the ring's must be the file's own (InfoGAN's G and SeqGAN's D use 1e-3 too)
        own_lr = "lr" in raw.get("optim", {}).get(name, {})
        assert opt.lr != getattr(default.optim, name).lr or own_lr, (path, name)
    # the length is the file's own (it may equal the default job's by coincidence: crypto's 20,000)
    assert cfg.data.kind != "toy" and "max_iters" in OmegaConf.load(path).get("trainer", {})


def test_shipped_configs_exist():
    assert any(p.endswith(os.path.join("toy", "ring.yaml")) for p in SHIPPED)
    assert any(p.endswith(os.path.join("toy", "grid.yaml")) for p in SHIPPED)


def test_the_grid_spells_out_its_recipe():
    """The grid once inherited batch, lr and EMA decay from the default job; it now sets them
    (its published figures: docs/toy_modes.md)."""
    cfg = load_config([os.path.join(REPO, "configs", "toy", "grid.yaml")])
    assert cfg.data.batch_size == 512 and cfg.optim.G.lr == cfg.optim.D.lr == 1e-3 and cfg.gan.ema.decay == 0.99
    assert cfg.optim.G.schedule == "linear" and cfg.reg.r1_gamma == 0.1 and cfg.trainer.max_iters == 16000


def test_yaml_then_overrides_compose(tmp_path):
    y = tmp_path / "a.yaml"
    y.write_text("optim:\n  D:\n    lr: 0.001\ntrainer:\n  max_iters: 10\n")
    cfg = load_config([str(y)], ["optim.D.lr=1e-4", "optim.G.betas=[0.0,0.9]"])
    assert cfg.optim.D.lr == pytest.approx(1e-4)
    assert cfg.optim.G.betas == [0.0, 0.9]
    assert cfg.trainer.max_iters == 10
    assert cfg.optim.G.lr == RunConfig().optim.G.lr  # untouched defaults stay


def test_every_problem_is_listed_at_once(tmp_path):
    y = tmp_path / "bad.yaml"
    y.write_text("optim:\n  D:\n    lrr: 0.1\n")
    with pytest.raises(ConfigError) as e:
        load_config([str(y)], ["trainer.max_iters=abc", "loss.name=wgan", "nonsense", "data.toy.mixture=spiral"])
    msg = str(e.value)
    # all of: unknown key with suggestion, wrong type, malformed override, and the bad choices
    # found by the checks that run over everything that did merge
    assert "optim.D.lrr" in msg and "did you mean 'optim.D.lr'" in msg
    assert "trainer.max_iters" in msg and "abc" in msg
    assert "not of the form key=value" in msg
    assert "loss.name='wgan' is not a known GAN loss" in msg and "mixture='spiral'" in msg
    assert len(e.value.problems) == 5


def test_type_errors_and_bad_choices_are_reported_together_from_the_cli():
    r = cli("train", "optim.G.lr=fast", "loss.name=foo", "model.arch=resnet9", "trainer.max_iters=5",
            "gan.ema.start_iter=7")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("  - ")]
    assert len(lines) == 4, r.stderr
    assert any("optim.G.lr='fast'" in ln for ln in lines)  # type error
    assert any("loss.name='foo'" in ln and "hinge, least_squares, minimax, nonsaturating, wasserstein" in ln
               for ln in lines)  # bad choice, the choices from the registry
    assert any("model.arch='resnet9'" in ln and "biggan, dcgan, dfgan, mlp, sngan" in ln for ln in lines)
    assert any("G_ema would only ever copy G" in ln for ln in lines)  # cross-field check
    assert "4 problem(s)" in r.stderr


def test_loading_a_config_does_not_import_torch():
    """Config modules are torch-free (and free of import cycles: each is imported first here)."""
    for first in ("ganscale.config", "ganscale.config.load", "ganscale.config.schema", "ganscale.config.default_job",
                  "ganscale.registry"):
        code = (f"import {first}, sys; import ganscale.config; ganscale.config.load_config([], []); "
                "from ganscale.cli.train import load_from_args; load_from_args([]); "
                "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('ganscale'))")
        r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, (first, r.stderr[-2000:])


def test_invalid_choices_and_combinations_list_valid_values():
    with pytest.raises(ConfigError) as e:
        load_config([], ["loss.name=wgan", "data.toy.mixture=spiral", "optim.D.betas=[0.5]", "gan.n_disc=0"])
    msg = str(e.value)
    assert "hinge, least_squares, minimax, nonsaturating, wasserstein" in msg
    assert "grid, ring" in msg
    assert "betas" in msg and "n_disc" in msg
    assert len(e.value.problems) == 4


def test_missing_config_file_is_a_config_error():
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(["/nonexistent/cfg.yaml"])


def test_round_trip_through_dict():
    cfg = load_config([], ["optim.D.lr=3e-4", "reg.spectral_norm=[D]"])
    again = config_from_dict(to_dict(cfg))
    assert again == cfg


def test_cli_bad_config_exits_2_without_traceback():
    r = cli("train", "trainer.max_iter=5", "optim.D.lr=fast")
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert "trainer.max_iter" in r.stderr and "did you mean 'trainer.max_iters'" in r.stderr
    assert "optim.D.lr" in r.stderr


def test_impossible_combinations_are_reported():
    with pytest.raises(ConfigError) as e:
        load_config([], ["trainer.precision=16-mixed", "trainer.accelerator=cpu", "gan.ema.start_iter=500",
                         "trainer.max_iters=100"])
    msg = str(e.value)
    assert "16-mixed needs a GPU" in msg and "bf16-mixed" in msg
    assert "G_ema would only ever copy G" in msg
    assert len(e.value.problems) == 2


def test_each_nested_problem_is_listed_once():
    """A nested component's check runs once, from the config tree walk (game.text used to be checked
    by game's check as well, so each of its problems was listed twice)."""
    with pytest.raises(ConfigError) as e:
        load_config([], ["game.text.kl_weight=-1", "game.text.mismatch=hard", "game.bigan.width=0"])
    problems = e.value.problems
    assert len(problems) == len(set(problems)), problems
    assert "game.text.kl_weight=-1.0 must be >= 0" in problems
    assert "game.text.mismatch='hard' must be 'shift' or 'nearest'" in problems
