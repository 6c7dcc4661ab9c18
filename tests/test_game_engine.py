"""A game defined here, outside the package: three networks, two players. The engine trains it in
one process, resumes it bit-exactly, and (tests/dist_worker.py, case `relay`) trains it under DDP
and ZeRO-2 on 2 ranks with the results of one process with the global batch
(tests/test_distributed_equivalence.py)."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ganscale.config import load_config
from ganscale.data.toy import ToyDataModule
from ganscale.games import GAMES, Game, Phase, Player, build_game
from ganscale.errors import UserError
from ganscale.train.module import GANModule, phase_seed


class RelayGame(Game):
    """E encodes x with a shared random key into a code, R decodes it with the key (team "AB");
    the adversary A tries to read x from the code alone and steps twice per team step."""

    name = "relay_test"
    players = {"AB": Player(nets=("E", "R"), optim="G"), "A": Player(nets=("A",), optim="D")}

    def build(self, cfg, info):
        def mlp(i, o):
            return nn.Sequential(nn.Linear(i, 16), nn.Tanh(), nn.Linear(16, o))

        return {"E": mlp(2 + 2, 4), "R": mlp(4 + 2, 2), "A": mlp(4, 2)}

    def phases(self, cfg):
        return [Phase("A_main", "A", self.adversary, repeat=2), Phase("AB_main", "AB", self.team)]

    def start_iteration(self, m, batch):
        self.chunks = batch["x"].chunk(2)  # one chunk per adversary step (gan.n_disc=2)

    def key(self, m, b, sub):  # a seeded draw for the global batch, this rank's rows
        return m.draw(b, lambda n, g: torch.randn(n, 2, generator=g, device=m.device), sub=sub)

    def adversary(self, m, sub):
        x = self.chunks[sub]
        with torch.no_grad():
            code = m.E(torch.cat([x, self.key(m, len(x), sub)], 1))
        loss = F.mse_loss(m.A(code), x)
        m.stats["loss/A"] = loss.detach()
        return loss

    def team(self, m, sub):
        x = self.chunks[-1]
        key = self.key(m, len(x), sub)
        code = m.E(torch.cat([x, key], 1))
        rec = F.mse_loss(m.R(torch.cat([code, key], 1)), x)
        # non-linear in batch means: the global batch's means, or N ranks would not equal one process
        leak = m.global_mean(F.mse_loss(m.A(code), x))
        # a mismatched key (another row's, paired over the global batch) must not decode
        wrong = m.global_mean(F.mse_loss(m.R(torch.cat([code, m.mismatched(key, sub=sub)], 1)), x))
        loss = rec + (1 - leak).pow(2) + 0.1 * (1 - wrong).pow(2)
        m.stats["loss/AB"] = loss.detach()
        return loss


OVERRIDES = ["gan.n_disc=2", "data.batch_size=16", "trainer.progress_bar=false", "trainer.log_every=1",
             "optim.G.schedule=constant", "optim.D.schedule=constant", "optim.G.lr=1e-2", "optim.D.lr=1e-2"]


def fit(tmp_path, iters, resume_from=None):
    cfg = load_config([], [*OVERRIDES, f"trainer.max_iters={iters}"])
    L.seed_everything(cfg.seed, verbose=False)
    dm = ToyDataModule(cfg)
    module = GANModule(cfg, dm.info, game=RelayGame())
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=-1, max_steps=-1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0, deterministic=True,
                        callbacks=[StopAt(iters)])
    trainer.fit(module, datamodule=dm, ckpt_path=resume_from)
    return module, trainer


class StopAt(L.Callback):
    def __init__(self, iters):
        self.iters = iters

    def on_train_batch_end(self, trainer, pl_module, *args):
        trainer.should_stop = pl_module.iteration >= self.iters


def state(m):
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def test_a_game_of_three_networks_and_two_players_trains(tmp_path):
    module, trainer = fit(tmp_path, 4)
    assert module.iteration == 4 and trainer.global_step == 4 * 3  # A twice, AB once per iteration
    assert module.num_skipped == {"AB": 0, "A": 0}
    assert [type(o).__name__ for o in trainer.optimizers] == ["Adam", "Adam"]
    # one optimizer per player, over exactly that player's networks
    ab = {id(p) for n in ("E", "R") for p in module.net(n).parameters()}
    assert {id(p) for g in trainer.optimizers[0].param_groups for p in g["params"]} == ab
    assert {id(p) for g in trainer.optimizers[1].param_groups for p in g["params"]} == \
        {id(p) for p in module.A.parameters()}
    assert set(module.stats) >= {"loss/A", "loss/AB", "grad_norm/A", "grad_norm/AB"}


def test_each_phase_trains_only_its_player(tmp_path):
    cfg = load_config([], [*OVERRIDES, "trainer.max_iters=1"])
    dm = ToyDataModule(cfg)
    m = GANModule(cfg, dm.info, game=RelayGame())
    seen = []

    class Spy(L.Callback):
        pass

    original = m.run_phase

    def spy(phase, sub=0):
        before = state(m)
        out = original(phase, sub)
        after = state(m)
        moved = sorted({k.split(".")[0] for k in before if not torch.equal(before[k], after[k])})
        seen.append((phase.name, moved, sorted(n for n in "ERA" if any(p.requires_grad for p in m.net(n).parameters()))))
        return out

    m.run_phase = spy
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=3, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(m, datamodule=dm)
    assert seen == [("A_main", ["A"], ["A"]), ("A_main", ["A"], ["A"]), ("AB_main", ["E", "R"], ["E", "R"])]


def test_resume_is_bit_exact_for_every_network_and_optimizer(tmp_path):
    straight, t_straight = fit(tmp_path, 4)
    half, t_half = fit(tmp_path, 2)
    ckpt = str(tmp_path / "half.ckpt")
    t_half.save_checkpoint(ckpt)
    resumed, t_resumed = fit(tmp_path, 4, resume_from=ckpt)
    assert resumed.iteration == 4
    a, b = state(straight), state(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    for oa, ob in zip(t_straight.optimizers, t_resumed.optimizers, strict=True):
        sa, sb = oa.state_dict()["state"], ob.state_dict()["state"]
        assert all(torch.equal(sa[i][k], sb[i][k]) for i in sa for k in sa[i] if torch.is_tensor(sa[i][k]))
    saved = torch.load(ckpt, weights_only=True)
    assert saved["ganscale"]["players"] == {"AB": ["E", "R"], "A": ["A"]}
    assert {k.split(".")[0] for k in saved["state_dict"]} == {"E", "R", "A"}


def test_games_are_found_by_name_and_unknown_ones_are_refused():
    cfg = load_config([], [])
    assert type(build_game(cfg)).__name__ == "GANGame"
    cfg.game.name = "nope"
    with pytest.raises(UserError, match="game.name='nope'.*gan"):
        build_game(cfg)
    assert "gan" in GAMES.choices()


def test_mismatched_pairs_every_row_with_another_rows_condition():
    cfg = load_config([], [*OVERRIDES, "trainer.max_iters=1"])
    m = GANModule(cfg, ToyDataModule(cfg).info)
    y = torch.arange(10)
    wrong = m.mismatched(y, "D_main")
    assert sorted(wrong.tolist()) == list(range(10)) and (wrong != y).all()  # a permutation, no row kept
    assert torch.equal(wrong, m.mismatched(y, "D_main"))  # seeded by (iteration, phase): resume-exact
    m.iteration += 1
    shifts = {int((m.mismatched(y, "D_main") - y)[0] % 10) for m.iteration in range(1, 30)}
    assert len(shifts) > 3  # a fresh pairing per iteration


def test_fake_labels_follow_the_data_or_are_uniform():
    cfg = load_config([], ["game.fake_labels=data"])
    info = ToyDataModule(cfg).info
    m = GANModule(cfg, type(info)(info.kind, info.shape, 5))  # pretend the data has 5 classes
    real = torch.full((64,), 3)
    assert (m.fake_labels(64, "D_main", real=real) == 3).all()  # drawn from the real labels
    m.cfg.game.fake_labels = "uniform"
    assert set(m.fake_labels(256, "D_main", real=real).tolist()) == set(range(5))


def test_phase_seeds_keep_the_gan_layout_and_never_collide():
    assert phase_seed(0, 7, 2, 5) == 7 * 64 + 2 * 16 + 5  # the GAN's draws are those of every earlier release
    seeds = {phase_seed(3, it, pid, sub) for it in range(50) for pid in range(8) for sub in range(20)}
    assert len(seeds) == 50 * 8 * 20
