"""The game engine: a LightningModule (manual optimization) that runs any game's phases.

    ganscale train                                          # game.name=gan: G against D
    ganscale train CONFIG game.name=NAME                    # any registered game (ganscale.games)

A game (ganscale.games.base) declares its networks, its players (networks sharing one optimizer)
and its phases. One `run_iteration` is one ganscale iteration (a `training_step` runs one, or the
iterations of a group of batches under trainer.iters_per_step):

    game.start_iteration(batch)        e.g. split the batch into the chunks of the repeated D steps
    for each phase (in declared order), if enabled and due (iteration % every == 0), repeat times:
        requires_grad on for the phase's player's networks only
        loss = phase.loss(engine, sub)
        player step: backward, strategy gradient sync, all-rank finite guard, optimizer step
    buffers synchronised across ranks, EMA update, iteration += 1

For `game.name=gan` (ganscale.games.gan) the phases are D_main x n_disc, D_reg (lazy R1), G_main
(plain, unrolled or with feature matching) and G_reg, and G_ema averages G.

Random draws (noise, fake labels, pairings, penalty interpolates) come from a generator seeded by
(seed, iteration, phase, sub) and are made for the *global* batch; each rank takes its slice. A
resumed run draws what an uninterrupted one draws, and N ranks with per-rank batch b draw exactly
what one process with batch N*b draws.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from typing import Callable, Iterator, Optional

import lightning as L
import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel

from ganscale.conditions import ConditionKind, build_condition, cond_index
from ganscale.config.load import to_dict
from ganscale.data.base import iteration_group
from ganscale.distributed.hooks import StrategyHooks, hooks_of
from ganscale.distributed.players import direct_steps
from ganscale.errors import UserError
from ganscale.games import Game, Phase, build_game
from ganscale.nets.standing_stats import with_standing_stats
from ganscale.train.ema import EMA
from ganscale.train.optim import apply_settings, build_optimizer, lr_at, set_lr
from ganscale.train.resume import check_weights_fit
from ganscale.utils.ranks import rank, world_size


def phase_seed(seed: int, iteration: int, phase_id: int, sub: int) -> int:
    """The seed of the draws of (iteration, phase, sub). The first four phases with sub < 16 keep
    the packed layout the GAN has always used (its runs stay reproducible); any other pair is
    mixed into its own 63-bit seed (splitmix64), so no two (iteration, phase, sub) share one."""
    base = seed * 1_000_003 + iteration
    if phase_id < 4 and 0 <= sub < 16:
        return (base * 64 + phase_id * 16 + sub) % (2**63)
    x = (base * 0x9E3779B97F4A7C15 + phase_id * 0xBF58476D1CE4E5B9 + sub * 0x94D049BB133111EB + 0x632BE59BD9B4E019)
    x &= 2**64 - 1
    for shift, mult in ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB)):
        x = ((x ^ (x >> shift)) * mult) & (2**64 - 1)
    return (x ^ (x >> 31)) % (2**63)


class GANModule(L.LightningModule):
    """Runs `game` (default: the one `cfg.game.name` names). Networks are attributes named as the
    game names them (`self.G`, `self.D`, ...), so checkpoints key them `G.*`, `D.*`."""

    _SCALARS = frozenset({"iteration", "phase", "_skip_flag"})
    """Plain attributes set several times per iteration; nn.Module.__setattr__'s parameter, buffer
    and submodule bookkeeping (a few microseconds a call, about 0.3 % of a toy iteration) is
    skipped for them. They are never tensors or modules."""

    def __setattr__(self, name: str, value) -> None:
        if name in GANModule._SCALARS:
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def __init__(self, cfg, info, game: Optional[Game] = None):
        super().__init__()
        self.cfg = cfg
        self.info = info
        self.automatic_optimization = False
        self.game = game or build_game(cfg)
        self.condition: ConditionKind = build_condition(cfg, info)
        """How the networks are conditioned (ganscale.conditions): real rows' conditions from the
        batch, fakes' drawn with the seeded global draws."""
        nets = self.game.build(cfg, info)
        for name, net in nets.items():
            self.add_module(name, net)
        self.net_names = list(nets)
        self.player_names = list(self.game.players)
        owned = [n for p in self.game.players.values() for n in p.nets]
        unknown = sorted(set(owned) - set(nets))
        if unknown or len(owned) != len(set(owned)):
            raise ValueError(f"game {self.game.name!r}: players must own distinct networks it builds "
                             f"(unknown: {unknown}, owned: {owned})")
        self.phase_list: list[Phase] = self.game.phases(cfg)
        self.phase_ids = {p.name: i for i, p in enumerate(self.phase_list)}
        self.ema_name: Optional[str] = None
        self._ema: Optional[EMA] = None
        if self.game.ema_of is not None:
            # `<net>_ema` (G_ema for the GAN) is None when gan.ema.enabled is false; the AveragedModel
            # holds the copy (and its checkpoint keys), ganscale.train.ema updates it
            ema = None
            if cfg.gan.ema.enabled:
                ema = AveragedModel(nets[self.game.ema_of], use_buffers=True)
                ema.requires_grad_(False)
                self.ema_name = f"{self.game.ema_of}_ema"
                self._ema = EMA(ema, nets[self.game.ema_of], cfg.gan.ema.decay)
            self.add_module(f"{self.game.ema_of}_ema", ema)
        self.sample_from_ema = cfg.eval.ema
        """False (eval.ema=false): `sample` and `sampler` use the raw generator even when the run has
        an EMA. The EMA ablation needs no second training: the average never feeds back into the game."""
        self._standing: Optional[nn.Module] = None
        """The sampler with standing BatchNorm statistics, inside `standing_stats`."""
        self.iteration = 0
        """ganscale's iteration counter (all phases once); saved in checkpoints."""
        self.lr_scale = 1.0
        """Multiplier on every learning rate, lowered by the non-finite guard's rollbacks
        (guard.lr_factor; the guard restores it on resume)."""
        self._num_skipped = {p: 0 for p in self.player_names}
        self._pending_skips: dict[str, Tensor] = {}
        self._skip_flag = False
        self._iteration_skips: Optional[list] = None
        """Per iteration since the last `pop_iteration_skips`: whether a player step was skipped
        (a bool, or a 0-d tensor on the device-flag path); None until someone asks for them."""
        self.stats: dict[str, Tensor] = {}
        """This iteration's detached statistics, slash-keyed (loss/D, grad_norm/G, ...)."""
        self.phase: Optional[str] = None
        """The phase running now (its draws default to its seeds)."""
        self._caches: dict = {}
        """Per-fit lists (players' parameters, optimizers, direct-step switch) and the player whose
        networks train now; emptied when a fit starts (`reset_caches`)."""

    def reset_caches(self) -> None:
        """Forget the cached parameter and optimizer lists (the strategy may have replaced them)."""
        self._caches = {}
        if self._ema is not None:
            self._ema.reset()

    def on_fit_start(self) -> None:
        self.reset_caches()

    def on_train_start(self) -> None:
        self.reset_caches()
        # after Lightning restored the optimizers (resume): the config, not the checkpoint, decides
        # betas, eps, momentum and weight decay
        for name, opt in self._optimizers.items():
            changed = apply_settings(opt, self.optim_section(name))
            if changed and self.trainer.is_global_zero:
                warnings.warn(f"optim.{self.game.players[name].optim} differs from the checkpoint's optimizer "
                              f"({', '.join(changed)}): training goes on with the config's values")

    @property
    def num_skipped(self) -> dict[str, int]:
        """Steps skipped because a loss or gradient was not finite on some rank, per player. Skips
        counted on the device (masked optimizer steps) are read here, when someone asks."""
        if self._pending_skips:
            pending, self._pending_skips = self._pending_skips, {}
            for p, t in pending.items():
                self._num_skipped[p] += int(t)  # host sync
        return self._num_skipped

    def count_skip(self, player: str, skipped) -> None:
        """Count a skipped step of `player`: a bool, or a 0-d tensor kept on the device."""
        if isinstance(skipped, Tensor):
            pending = self._pending_skips.get(player)
            self._pending_skips[player] = skipped.long() if pending is None else pending + skipped
            self._skip_flag = skipped | self._skip_flag
        elif skipped:
            self._num_skipped[player] += 1
            self._skip_flag = True

    def pop_iteration_skips(self) -> list[bool]:
        """For each iteration since the last call, in order, whether any player step in it was
        skipped (the non-finite guard's streaks); the first call starts the record. Flags kept on
        the device are read in one sync."""
        flags, self._iteration_skips = self._iteration_skips or [], []
        if any(isinstance(f, Tensor) for f in flags):
            return [bool(v) for v in torch.stack([torch.as_tensor(f, device=self.device) for f in flags]).tolist()]
        return [bool(f) for f in flags]

    # ----------------------------------------------------------------- networks and players
    def net(self, name: str) -> nn.Module:
        return getattr(self, name)

    def player_nets(self, player: str) -> list[nn.Module]:
        return [self.net(n) for n in self.game.players[player].nets]

    def player_parameters(self, player: str) -> list[Tensor]:
        """The parameters of `player`'s networks, in order (a list made once per fit)."""
        cached = self._caches.setdefault("params", {})
        if player not in cached:
            cached[player] = [p for net in self.player_nets(player) for p in net.parameters()]
        return list(cached[player])

    def game_nets(self) -> list[nn.Module]:
        """Every network of the game (players' and frozen ones), not the EMA copies."""
        return [self.net(n) for n in self.net_names]

    def _train(self, player: Optional[str], force: bool = False) -> None:
        """requires_grad on for `player`'s networks only (none for None), so no phase computes
        gradients it will not use; networks outside every player stay frozen. Switched only when
        the training player changes (D_main -> D_reg keeps it), over the cached parameter lists;
        `force` after something else changed requires_grad."""
        if not force and self._caches.get("training", "unset") == player:
            return
        for name in self.player_names:
            flag = name == player
            for p in self.player_parameters(name):
                p.requires_grad_(flag)
        self._caches["training"] = player

    def optimizer_of(self, player: str):
        return self._optimizers[player]

    @property
    def _optimizers(self) -> dict:
        cached = self._caches.get("optimizers")
        if cached is None or cached[0] is not self._trainer:
            opts = self.optimizers()
            cached = self._caches["optimizers"] = (
                self._trainer, dict(zip(self.player_names, opts if isinstance(opts, list) else [opts])))
        return cached[1]

    @property
    def direct_steps(self) -> bool:
        """Backward and optimizer step without Lightning's wrappers (ganscale.distributed.players)."""
        if "direct" not in self._caches:
            # driven by Fabric (tests, tools): its backward is the precision-aware one
            self._caches["direct"] = self._fabric is None and self._trainer is not None and direct_steps(self.trainer)
        return self._caches["direct"]

    @property
    def hooks(self) -> StrategyHooks:
        attached = self._trainer is not None or self._fabric is not None
        return hooks_of(self.trainer.strategy if attached else None)

    def _player_step(self, player: str, loss: Tensor) -> bool:
        """Backward, synchronise, guard, step (ganscale.distributed.players, the same for one
        process, DDP and DeepSpeed). Returns False when the step was skipped on every rank."""
        return self.hooks.player_step(self, player, loss)

    @property
    def sampler(self) -> nn.Module:
        """The generator used for sampling: its EMA when there is one (and `sample_from_ema`); inside
        `standing_stats`, a copy with re-estimated BatchNorm statistics."""
        if self._standing is not None:
            return self._standing
        if self.G_ema_module is not None and self.sample_from_ema:
            return self.G_ema_module
        if self.game.sample_net is None:
            raise ValueError(f"game {self.game.name!r} has no generator to sample from")
        return self.net(self.game.sample_net)

    @property
    def G_ema_module(self) -> Optional[nn.Module]:
        """The EMA of the sampling generator, or None (no EMA, or the game averages another net:
        the semi-supervised GAN's D)."""
        if not self.ema_name or self.game.ema_of != self.game.sample_net:
            return None
        return self.net(self.ema_name).module

    # ----------------------------------------------------------------- seeded global draws
    @property
    def _rank(self) -> int:
        return rank(self._trainer)

    @property
    def _world(self) -> int:
        return world_size(self._trainer)

    def _phase_generator(self, phase: Optional[str] = None, sub: int = 0) -> torch.Generator:
        pid = self.phase_ids[phase or self.phase]
        return torch.Generator(device=self.device).manual_seed(phase_seed(self.cfg.seed, self.iteration, pid, sub))

    def _rank_slice(self, t, per_rank: int):
        return cond_index(t, slice(self._rank * per_rank, (self._rank + 1) * per_rank))

    def draw(self, per_rank: int, fn: Callable[[int, torch.Generator], Tensor], phase: Optional[str] = None,
             sub: int = 0, generator: Optional[torch.Generator] = None) -> Tensor:
        """This rank's slice of `fn(global_batch, generator)`, the generator seeded by (iteration,
        phase, sub) unless one is given (then its next draw)."""
        g = generator or self._phase_generator(phase, sub)
        return self._rank_slice(fn(per_rank * self._world, g), per_rank)

    def noise(self, per_rank: int, phase: Optional[str] = None, sub: int = 0,
              generator: Optional[torch.Generator] = None, net: str = "G") -> Tensor:
        """This rank's slice of the global batch of latents of `net` (its `sample_z`)."""
        G = self.net(net)
        return self.draw(per_rank, lambda n, g: G.sample_z(n, generator=g, device=self.device), phase, sub, generator)

    def global_rows(self, c):
        """Every rank's rows of a condition batch (None, Tensor or TextCondition), in rank order."""
        if c is None or self._world == 1:
            return c
        if isinstance(c, Tensor):
            return self.hooks.gather_rows(c)
        return type(c)(**{k: None if v is None else self.hooks.gather_rows(v) for k, v in vars(c).items()})

    def global_rows_differentiable(self, t: Tensor) -> Tensor:
        """Every rank's rows of an activation `t`, in rank order, differentiably: for a loss that
        couples the rows of a batch (DAMSM's in-batch mismatches), each rank computes the global
        batch's loss and, after the players' gradient average, holds its gradient."""
        return self.hooks.gather_rows_differentiable(t)

    def fake_labels(self, per_rank: int, phase: Optional[str] = None, sub: int = 0,
                    generator: Optional[torch.Generator] = None, real: Optional[Tensor] = None) -> Optional[Tensor]:
        """Class labels for this rank's fakes: uniform over the classes, or (game.fake_labels=data
        and `real` given) drawn from the global batch's real labels."""
        if not self.info.num_classes:
            return None
        if self.cfg.game.fake_labels == "data" and real is not None:
            pool = self.global_rows(real)
            return self.draw(per_rank, lambda n, g: pool[torch.randint(len(pool), (n,), generator=g,
                                                                       device=self.device)],
                             phase, sub + 8, generator)
        k = self.info.num_classes
        return self.draw(per_rank, lambda n, g: torch.randint(k, (n,), generator=g, device=self.device),
                         phase, sub + 8, generator)

    def mismatched(self, c, phase: Optional[str] = None, sub: int = 0, generator: Optional[torch.Generator] = None,
                   pick: Optional[Callable] = None):
        """This rank's rows of the global condition batch with every row paired to another row's
        condition: the matching-aware 'wrong' pairs. By default a random shift 1..N-1 of the global
        batch; `pick(pool, generator)` -> [N] row indices chooses otherwise (it sees the global
        batch and the seeded generator, so every rank picks what one process picks)."""
        if c is None:
            return None
        pool = self.global_rows(c)
        n = len(pool)
        if n < 2:
            raise ValueError("mismatched conditions need a global batch of at least 2")
        g = generator or self._phase_generator(phase, sub + 12)
        if pick is not None:
            index = pick(pool, g)
        else:
            shift = int(torch.randint(1, n, (1,), generator=g, device=self.device))  # the same on every rank
            index = (torch.arange(n, device=self.device) + shift) % n
        per_rank = n // self._world
        return self._rank_slice(cond_index(pool, index), per_rank)

    def global_mean(self, t: Tensor) -> Tensor:
        """A per-rank batch mean made the global batch's, differentiably. Losses linear in batch
        means need nothing (players' gradients are averaged across ranks); a loss non-linear in a
        batch mean, like (1 - mean error)^2, must take the mean through this so that N ranks equal
        one process."""
        return self.hooks.global_mean(t)

    # ----------------------------------------------------------------- one iteration
    def training_step(self, batch: dict, batch_idx: int) -> None:
        """One ganscale iteration, or the iterations of a group of batches (trainer.iters_per_step;
        ganscale.data.base.IterationGroups cuts groups where ops are due, max_iters included)."""
        for b in iteration_group(batch) or [batch]:
            self.run_iteration(b)

    def run_iteration(self, batch: dict) -> None:
        self.apply_lr_schedule()
        self.game.start_iteration(self, batch)
        for phase in self.phase_list:
            if not phase.enabled or self.iteration % phase.every:
                continue
            for sub in range(phase.repeat):
                self.run_phase(phase, sub)
        self._train(None)
        self.phase = None
        # BatchNorm statistics equal on every rank before the EMA averages them
        self.hooks.sync_replica_buffers(self.game_nets())
        self.update_ema()
        self.iteration += 1
        if self._iteration_skips is not None:
            self._iteration_skips.append(self._skip_flag)
        self._skip_flag = False

    def phase_by_name(self, name: str) -> Phase:
        return self.phase_list[self.phase_ids[name]]

    def run_phase(self, phase: Phase, sub: int = 0) -> bool:
        """One step of `phase`'s player on its loss; False if skipped (no loss, or not finite)."""
        self.phase = phase.name
        self._train(phase.player)
        loss = phase.loss(self, sub)
        if loss is None:
            return False
        return self._player_step(phase.player, loss)

    def update_ema(self) -> None:
        if self._ema is not None:
            # before start_iter the average copies the network (no averaging of the early weights)
            self._ema.update(copy=self.iteration < self.cfg.gan.ema.start_iter)

    # ----------------------------------------------------------------- Lightning hooks
    def configure_optimizers(self):
        return [build_optimizer(self.player_parameters(p), self.optim_section(p)) for p in self.player_names]

    def optim_section(self, player: str):
        """The optim.* section (OptimizerConfig) of `player` (the game names it: G or D)."""
        return getattr(self.cfg.optim, self.game.players[player].optim)

    def apply_lr_schedule(self) -> None:
        """Set each player's learning rate for this iteration: its schedule (ganscale.train.optim.lr_at,
        constant included), as the game adjusts it (Game.player_lr), times the guard's lr_scale.
        The one place learning rates are set."""
        for name, opt in self._optimizers.items():
            section = self.optim_section(name)
            lr = self.game.player_lr(self, name, lr_at(section, self.iteration, self.cfg.trainer.max_iters))
            set_lr(opt, lr * self.lr_scale)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["ganscale"] = {
            "iteration": self.iteration,
            "num_skipped": dict(self.num_skipped),
            "config": to_dict(self.cfg),
            "game": self.game.name,
            "players": {p: list(s.nets) for p, s in self.game.players.items()},
            "info": self.info.as_dict(),
        }

    def adapt_stored_weights(self, weights: dict) -> None:
        """Fit a checkpoint's state dict to this module in place, or raise one UserError.

        A frozen net no player trains (a text encoder loaded from its own file) may have grown or
        lost a part since the checkpoint (DAMSM switched on adds the image encoder, off drops it):
        that part comes from its file, as in a fresh run. Anything else that does not fit (a changed
        width, EMA switched on) is the error, naming the keys, instead of torch's strict-load traceback."""
        trained = {n for p in self.game.players.values() for n in p.nets}
        frozen = tuple(f"{n}." for n in self.net_names if n not in trained)
        own = self.state_dict()
        if frozen:
            for key, value in own.items():
                if key.startswith(frozen) and key not in weights:
                    weights[key] = value
            for key in [k for k in weights if k.startswith(frozen) and k not in own]:
                del weights[key]
        check_weights_fit(own, weights)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        weights = checkpoint.get("state_dict")  # absent in DeepSpeed's checkpoints (its engines load them)
        if weights is not None:
            self.adapt_stored_weights(weights)
        state = checkpoint.get("ganscale", {})
        self.iteration = int(state.get("iteration", 0))
        self.num_skipped.update(state.get("num_skipped", {}))
        self.reset_caches()  # the average's n_averaged comes from the checkpoint

    # ----------------------------------------------------------------- sampling
    @torch.no_grad()
    def sample(self, n: int, seed: int = 0, y: Optional[Tensor] = None, truncation: Optional[float] = None,
               batch: int = 1024) -> Tensor:
        """n samples from the game's generator (its EMA when there is one), on CPU; the same seed
        gives the same samples. `y`: the conditions of the samples (class labels, a TextCondition),
        else the condition kind draws them."""
        G = self.sampler
        was_training = G.training
        G.eval()
        g = torch.Generator(device=self.device).manual_seed(seed)
        out = []
        for start in range(0, n, batch):
            m = min(batch, n - start)
            yy = None if y is None else cond_index(y, slice(start, start + m))
            out.append(self._generate(G, m, g, yy, truncation).float().cpu())
        G.train(was_training)
        return torch.cat(out) if out else torch.empty(0, *self.info.shape)

    def _generate(self, G: nn.Module, m: int, g: torch.Generator, y=None, truncation: Optional[float] = None):
        """G's output for m draws of z (and of the conditions, unless `y` gives them) from `g`."""
        z = G.sample_z(m, generator=g, device=self.device, truncation=truncation)
        yy = self.condition.sample(self, m, g, y)
        # text-to-image G draws its conditioning-augmentation noise from the same seeded generator
        x = G(z, yy, generator=g) if self.condition.name == "text" else G(z, yy)
        return x[0] if isinstance(x, tuple) else x  # text-to-image G: (images, extras)

    @contextmanager
    def standing_stats(self, num_batches: int, batch: Optional[int] = None, seed: int = 0) -> Iterator[None]:
        """Inside, `sample` and `sampler` use a copy of the sampler whose BatchNorm statistics are
        BigGAN's standing statistics (ganscale.nets.standing_stats): the average over `num_batches`
        forward passes in training mode of `batch` draws (default: the training batch per rank).
        0 = the statistics from training. The run's own networks are untouched."""
        if num_batches <= 0:
            yield
            return
        if self.condition.name == "text":  # eval.standing_stats is refused at config time too
            raise UserError("standing statistics are not for text-to-image runs (their samples are drawn for "
                            "captions): leave out --standing-stats / set eval.standing_stats=0")
        m, g = batch or self.cfg.data.batch_size, torch.Generator(device=self.device).manual_seed(seed)
        self._standing = with_standing_stats(self.sampler, lambda G: self._generate(G, m, g), num_batches)
        try:
            yield
        finally:
            self._standing = None
