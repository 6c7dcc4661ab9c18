"""The default job (`ganscale train` without a config file) is the packaged configs/toy/ring.yaml,
the only copy of the ring recipe; RunConfig() and a user's own YAML start from the components'
neutral defaults."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import zipfile

from conftest import REPO
from ganscale.cli.train import load_from_args
from ganscale.config import RunConfig, config_from_dict, load_config, to_dict
from ganscale.config.default_job import default_job_path, packaged_config

RING_YAML = os.path.join(REPO, "configs", "toy", "ring.yaml")

RING_RECIPE = {
    "data.batch_size": 512,
    "optim.G.lr": 1e-3,
    "optim.D.lr": 1e-3,
    "optim.G.schedule": "linear",
    "optim.G.decay_start": 0.2,
    "optim.D.schedule": "linear",
    "optim.D.decay_start": 0.2,
    "reg.r1_gamma": 0.01,
    "reg.r1_interval": 4,
    "gan.ema.decay": 0.99,
    "trainer.max_iters": 20000,
    "trainer.iters_per_step": 10,
}
"""Where the default job differs from the neutral defaults (docs/mode_collapse.md, docs/toy_modes.md);
changing any of these but iters_per_step (speed only: tests/test_iters_per_step.py) changes the
default job's published figures."""


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        out.update(_flat(v, key + ".") if isinstance(v, dict) else {key: v})
    return out


def _differences(a: dict, b: dict) -> dict:
    fa, fb = _flat(a), _flat(b)
    assert fa.keys() == fb.keys()
    return {k: fb[k] for k in fa if fa[k] != fb[k]}


def test_the_default_job_is_the_packaged_ring_yaml():
    path = default_job_path()
    assert os.path.realpath(path) == os.path.realpath(RING_YAML)  # one copy: the package links configs/
    assert os.path.realpath(os.path.dirname(packaged_config("toy/grid.yaml"))) == os.path.dirname(os.path.realpath(RING_YAML))
    cfg = load_from_args([])
    assert cfg == load_config([path])
    assert cfg.config_name is None  # runs keep their name default-<time>
    # the ring recipe, value for value, on top of the neutral defaults and nothing else
    assert _differences(to_dict(RunConfig()), to_dict(cfg)) == RING_RECIPE


def test_overrides_without_a_config_file_apply_over_the_default_job():
    cfg = load_from_args(["trainer.max_iters=6000", "optim.D.lr=5e-4"])
    assert cfg.trainer.max_iters == 6000 and cfg.optim.D.lr == 5e-4
    assert cfg.optim.G.lr == 1e-3 and cfg.optim.G.schedule == "linear" and cfg.data.batch_size == 512


def test_runconfig_is_the_components_neutral_defaults():
    cfg = RunConfig()
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            assert value == type(value)(), f.name
    assert cfg.optim.G.lr == 2e-4 and cfg.optim.G.schedule == "constant" and cfg.reg.r1_gamma == 0.0
    assert load_config([], []) == cfg


def test_a_users_config_inherits_nothing_from_the_toy_recipe(tmp_path):
    y = tmp_path / "mine.yaml"
    y.write_text("data:\n  batch_size: 64\n")
    cfg = load_from_args([str(y)])
    assert _differences(to_dict(RunConfig()), to_dict(cfg)) == {"config_name": "mine", "data.batch_size": 64}


def test_a_stored_config_from_before_a_field_existed_keeps_its_old_behaviour():
    """Fields missing from a stored config take the components' neutral defaults, not the default
    job's: a ring run saved before optim.*.schedule existed ran at a constant lr, and must still
    read back (for resume, `ganscale eval` and the benchmark's run reuse) as constant."""
    job = load_from_args([])
    stored = to_dict(job)
    for name in ("G", "D"):
        for key in ("schedule", "decay_start", "final_scale"):
            del stored["optim"][name][key]
    cfg = config_from_dict(stored)
    assert job.optim.G.schedule == "linear"
    assert cfg.optim.G.schedule == cfg.optim.D.schedule == "constant"
    assert cfg.optim.G.lr == 1e-3 and cfg.trainer.max_iters == job.trainer.max_iters
    # a complete stored config reads back exactly
    assert config_from_dict(to_dict(job)) == job


def test_the_default_job_runs_from_a_non_editable_install(tmp_path):
    """A wheel carries the shipped YAMLs; installed from it (here: unpacked onto PYTHONPATH, run
    from another folder) the default job loads the ring recipe without the source tree."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(os.path.join(REPO, name), src / name)
    shutil.copytree(os.path.join(REPO, "configs"), src / "configs")
    shutil.copytree(os.path.join(REPO, "ganscale"), src / "ganscale", symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
                        "-q", "-w", str(tmp_path / "dist")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").iterdir()
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        assert "ganscale/configs/toy/ring.yaml" in names and "ganscale/configs/toy/grid.yaml" in names
        assert z.read("ganscale/configs/toy/ring.yaml") == open(RING_YAML, "rb").read()
        z.extractall(site)
    code = ("import ganscale, json; from ganscale.cli.train import load_from_args; from ganscale.config import to_dict; "
            "print(ganscale.__file__); print(json.dumps(to_dict(load_from_args([]))))")
    env = dict(os.environ, PYTHONPATH=str(site))
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    where, dumped = r.stdout.splitlines()
    assert where.startswith(str(site))
    assert json.loads(dumped) == to_dict(load_from_args([]))
