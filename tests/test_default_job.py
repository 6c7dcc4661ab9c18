"""The default job (`ganscale train` with no arguments) is the tuned ring config, value for value."""

import dataclasses
import os

from omegaconf import OmegaConf

from conftest import REPO
from ganscale.config import RunConfig, to_dict
from ganscale.config.default_job import RING
from ganscale.nets.config import ModelConfig
from ganscale.train.config import OptimizerConfig, RegConfig

RING_YAML = os.path.join(REPO, "configs", "toy", "ring.yaml")


def neutral_runconfig() -> RunConfig:
    """RunConfig built from the components' own defaults (no default-job values)."""
    cfg = RunConfig()
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            setattr(cfg, f.name, type(value)())
    return cfg


def test_ring_yaml_spells_out_the_default_job():
    """configs/toy/ring.yaml over the components' neutral defaults gives exactly RunConfig()."""
    merged = OmegaConf.merge(OmegaConf.structured(neutral_runconfig()), OmegaConf.load(RING_YAML))
    got, want = OmegaConf.to_container(merged), to_dict(RunConfig())
    assert got == want


def test_tuned_values_reach_runconfig_but_not_the_component_defaults():
    cfg = RunConfig()
    for key, value in RING.items():
        node = cfg
        for part in key.split("."):
            node = getattr(node, part)
        assert node == value, key
    assert to_dict(neutral_runconfig()) != to_dict(cfg)
    # components keep their neutral defaults: an image config does not inherit toy settings by accident
    assert OptimizerConfig().lr == 2e-4 and RegConfig().r1_gamma == 0.0 and ModelConfig().z_dim >= 1
