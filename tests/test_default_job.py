"""The default job (`ganscale train` with no arguments) is the tuned ring config, value for value."""

import os

from omegaconf import OmegaConf

from conftest import REPO
from ganscale.config import RunConfig, config_from_dict, to_dict
from ganscale.config.default_job import RING, neutral_config
from ganscale.nets.config import ModelConfig
from ganscale.train.config import OptimizerConfig, RegConfig

RING_YAML = os.path.join(REPO, "configs", "toy", "ring.yaml")




def test_ring_yaml_spells_out_the_default_job():
    """configs/toy/ring.yaml over the components' neutral defaults gives exactly RunConfig()."""
    merged = OmegaConf.merge(OmegaConf.structured(neutral_config()), OmegaConf.load(RING_YAML))
    got, want = OmegaConf.to_container(merged), to_dict(RunConfig())
    assert got == want


def test_tuned_values_reach_runconfig_but_not_the_component_defaults():
    cfg = RunConfig()
    for key, value in RING.items():
        node = cfg
        for part in key.split("."):
            node = getattr(node, part)
        assert node == value, key
    assert to_dict(neutral_config()) != to_dict(cfg)
    # components keep their neutral defaults: an image config does not inherit toy settings by accident
    assert OptimizerConfig().lr == 2e-4 and RegConfig().r1_gamma == 0.0 and ModelConfig().z_dim >= 1


def test_a_stored_config_from_before_a_field_existed_keeps_its_old_behaviour():
    """Fields missing from a stored config take the components' neutral defaults, not the default
    job's: a ring run saved before optim.*.schedule existed ran at a constant lr, and must still
    read back (for resume, `ganscale eval` and the benchmark's run reuse) as constant."""
    stored = to_dict(RunConfig())
    for name in ("G", "D"):
        for key in ("schedule", "decay_start", "final_scale"):
            del stored["optim"][name][key]
    cfg = config_from_dict(stored)
    assert RunConfig().optim.G.schedule == "linear"
    assert cfg.optim.G.schedule == cfg.optim.D.schedule == "constant"
    assert cfg.optim.G.lr == 1e-3 and cfg.trainer.max_iters == RunConfig().trainer.max_iters
    # a complete stored config reads back exactly
    assert to_dict(config_from_dict(to_dict(RunConfig()))) == to_dict(RunConfig())
