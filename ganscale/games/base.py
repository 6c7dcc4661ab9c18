"""What a game declares: its networks, its players and its phases. The engine
(ganscale.train.module.GANModule) runs any declaration.

    class MyGame(Game):
        name = "mine"
        players = {"AB": Player(nets=("alice", "bob"), optim="G"), "E": Player(nets=("eve",), optim="D")}

        def build(self, cfg, info):                       # every network, by name
            return {"alice": ..., "bob": ..., "eve": ...}

        def phases(self, cfg):                            # in order; the position is the phase's seed id
            return [Phase("E_main", "E", self.eve_loss, repeat=2), Phase("AB_main", "AB", self.ab_loss)]

        def eve_loss(self, m, sub):                       # m: the engine; returns the phase's loss
            ...

One iteration runs every enabled phase that is due (`every`), each `repeat` times. In a phase only
its player's networks require grad; the loss goes through the engine's player step (backward,
strategy gradient sync, all-rank finite guard, optimizer step). A player is a group of networks
that share one optimizer (the `optim.<optim>` section), one set of DDP gradient buckets and one
DeepSpeed engine. Networks outside every player are frozen (e.g. a trained text encoder).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Optional

if TYPE_CHECKING:  # the declarations stay importable without torch (config checks list games)
    from torch import Tensor, nn


@dataclass(frozen=True)
class Player:
    nets: tuple[str, ...]
    """Networks this player trains (one optimizer over all of their parameters)."""
    optim: str
    """The optimizer section it uses: `optim.G` or `optim.D` (learning rate, betas, schedule)."""


@dataclass(frozen=True)
class Phase:
    name: str
    """Logged and used in the seeds of its random draws (with its position in the list)."""
    player: str
    """The player that steps on this phase's loss."""
    loss: Callable[[Any, int], Optional["Tensor"]]
    """loss(engine, sub) -> the loss to step on, or None to skip the step; `sub` counts repeats."""
    repeat: int = 1
    """How many times per iteration it runs (the D steps per G step, Eve's two steps, ...)."""
    every: int = 1
    """It runs at iterations i with i % every == 0 (lazy regularization)."""
    enabled: bool = True
    """A disabled phase keeps its position (and so the seed ids of the phases after it)."""


class Game(ABC):
    """A declaration; subclasses set `name` and `players` and implement `build` and `phases`."""

    name: ClassVar[str] = ""
    players: ClassVar[dict[str, Player]] = {}
    ema_of: ClassVar[Optional[str]] = None
    """Network averaged into `<name>_ema` when gan.ema.enabled (the GAN's G), or None."""
    sample_net: ClassVar[Optional[str]] = None
    """The generator `ganscale sample` and evaluation use (its EMA when there is one), or None."""

    @abstractmethod
    def build(self, cfg, info) -> dict[str, "nn.Module"]:
        ...

    @abstractmethod
    def phases(self, cfg) -> list[Phase]:
        ...

    def player_lr(self, m, player: str, lr: float) -> float:
        """This iteration's learning rate of `player`, given its scheduled one (optim.<G|D> at
        m.iteration); the engine then applies the guard's lr_scale. A game whose players change
        rate with the phase of training (SeqGAN's adversarial G) overrides it; it must be a pure
        function of the iteration so that resumes and N ranks step alike."""
        return lr

    def start_iteration(self, m, batch: dict) -> None:
        """Called once per iteration before the phases, with this rank's batch (e.g. to split
        it into the chunks of the repeated D steps)."""

    def callbacks(self, cfg, run_dir: str) -> list:
        """Lightning callbacks the game adds to a run, e.g. its own evaluation (run after the
        generic evaluation and before the checkpoint callback, which records their metrics)."""
        return []

    def evaluate(self, m, cfg) -> Optional[dict]:
        """The game's own metrics for `ganscale eval` (e.g. BiGAN's latent metrics), or None for
        the image metrics of its generator."""
        return None

    def check(self, cfg, info) -> list[str]:
        """Problems with this game under `cfg` and the data `info` (reported with the config's)."""
        return []
