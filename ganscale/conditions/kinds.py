"""Condition kinds: where the conditions of real rows come from and how those of fakes are drawn.

    game.condition=auto     class when the data has classes (and the model is conditional), else none
    game.condition=none     G(z), D(x)
    game.condition=class    y from the batch; fakes get labels as game.fake_labels says
    game.condition=text     captions through the game's frozen text encoder (text_kind.py)

A new kind (text embeddings, latent codes, ...) is one file with a ConditionKind subclass plus one
line in ganscale/registry.py's CONDITIONS (`"name": "ganscale.conditions.<file>:<Class>"`).
Every draw goes through the engine's seeded global-batch draws (`m.draw`, `m.fake_labels`), so
N ranks still equal one process.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Optional

import torch


class ConditionKind(ABC):
    """How a game conditions its networks (a batch of conditions: see ganscale.conditions)."""

    name = ""

    @abstractmethod
    def real(self, m, batch: dict, rows: slice) -> Any:
        """The conditions of the real rows `rows` of this rank's batch."""
        ...

    @abstractmethod
    def fake(self, m, per_rank: int, real: Any, phase: Optional[str] = None, sub: int = 0,
             generator: Optional[torch.Generator] = None) -> Any:
        """Conditions for `per_rank` fakes of this rank; `real` are the real rows' conditions
        of the same step (a kind may draw from them, e.g. the data's label frequencies)."""
        ...

    def sample(self, m, n: int, generator: torch.Generator, given: Any = None) -> Any:
        """Conditions of n samples (`ganscale sample`, evaluation, plots): `given` rows when the
        caller names them (--class, --text), else drawn from `generator`."""
        return None


class NoCondition(ConditionKind):
    name = "none"

    def real(self, m, batch, rows):
        return None

    def fake(self, m, per_rank, real, phase=None, sub=0, generator=None):
        return None


class ClassCondition(ConditionKind):
    """Class indices `batch["y"]`; fakes: uniform over the classes or the global batch's labels."""

    name = "class"

    def real(self, m, batch, rows):
        return batch["y"][rows]

    def fake(self, m, per_rank, real, phase=None, sub=0, generator=None):
        return m.fake_labels(per_rank, phase, sub, generator=generator, real=real)

    def sample(self, m, n, generator, given=None):
        if given is not None:
            return given.to(m.device)
        return torch.randint(m.info.num_classes, (n,), generator=generator, device=m.device)


def resolve_condition(cfg, info) -> str:
    name = cfg.game.condition
    if name == "auto":
        return "class" if info.num_classes and getattr(cfg.model, "conditional", True) else "none"
    return name
