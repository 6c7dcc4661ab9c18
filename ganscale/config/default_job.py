"""The default job: `ganscale train` with no config file runs the packaged configs/toy/ring.yaml,
the tuned 2D-ring recipe (how its values were chosen: docs/mode_collapse.md; the 5-seed
verification: docs/toy_modes.md). That YAML is the only copy of the recipe: RunConfig() holds
the components' neutral defaults, so a config of your own inherits nothing from the ring.

The shipped YAMLs are package data (ganscale/configs is the top-level configs/ folder), so the
default job also runs from a non-editable install:

    ganscale train                          # = ganscale train <package>/configs/toy/ring.yaml
    ganscale train trainer.max_iters=6000   # overrides apply on top of the ring recipe
"""

from __future__ import annotations

import os
from importlib import resources

DEFAULT_JOB = os.path.join("toy", "ring.yaml")
"""The default job's YAML, relative to the packaged configs folder."""


def packaged_config(name: str) -> str:
    """Path of a YAML shipped with the package, e.g. packaged_config("toy/grid.yaml")."""
    return str(resources.files("ganscale").joinpath("configs", *name.replace(os.sep, "/").split("/")))


def default_job_path() -> str:
    """The YAML `ganscale train` runs when no config file is given."""
    return packaged_config(DEFAULT_JOB)
