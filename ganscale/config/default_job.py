"""The default job: what `ganscale train` runs with no arguments is the tuned 2D-ring config.

Components keep their own neutral defaults (an image config must not inherit toy learning rates
from OptimizerConfig); RunConfig builds its sections with the values below on top, so RunConfig()
equals configs/toy/ring.yaml (tests/test_default_job.py checks that they agree). The values and
how they were chosen: docs/mode_collapse.md ("Tuning the shipped toy configs"); the 5-seed
verification: docs/toy_modes.md.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, TypeVar

T = TypeVar("T")

RING: dict[str, Any] = {
    "data.batch_size": 512,
    "optim.G.lr": 1e-3,
    "optim.D.lr": 1e-3,
    "optim.G.schedule": "linear",
    "optim.G.decay_start": 0.5,
    "optim.D.schedule": "linear",
    "optim.D.decay_start": 0.5,
    "reg.r1_gamma": 0.01,
    "gan.ema.decay": 0.99,
    "trainer.max_iters": 32000,
}
"""Dotted keys of RunConfig -> the tuned ring value (everything else: the component's default)."""


def tuned(section: str, cls: Callable[[], T]) -> Callable[[], T]:
    """A default_factory for RunConfig.<section>: cls() with the RING values of that section."""

    def make() -> T:
        obj = cls()
        prefix = section + "."
        for key, value in RING.items():
            if not key.startswith(prefix):
                continue
            *path, leaf = key[len(prefix):].split(".")
            node = obj
            for part in path:
                node = getattr(node, part)
            if not hasattr(node, leaf):
                raise AttributeError(f"default job: {key} is not a config key")
            setattr(node, leaf, value)
        return obj

    return make


def neutral_config():
    """RunConfig with every section at its component's own defaults (none of the RING values):
    the base for stored configs (ganscale.config.load.config_from_dict)."""
    from ganscale.config.schema import RunConfig  # the schema imports this module

    cfg = RunConfig()
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            setattr(cfg, f.name, type(value)())
    return cfg
