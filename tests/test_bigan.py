"""BiGAN / ALI (ganscale.games.bigan): the losses against hand-computed values, the encoder really
trains (the classic BiGAN bug: E left out of the optimizer or cut off from D's gradient), the
latent metrics on constructed data, and `ganscale encode` from the CLI. DDP/ZeRO equivalence:
cases `bigan` and `ali` in tests/dist_worker.py."""

from __future__ import annotations

import json
import math
import os

import lightning as L
import numpy as np
import pytest
import torch

from test_game_engine import StopAt
from ganscale.cli import main
from ganscale.config import load_config
from ganscale.data.base import DataInfo
from ganscale.data.toy import ToyDataModule
from ganscale.errors import UserError
from ganscale.ops.checkpoint.store import commit
from ganscale.metrics.latent import linear_probe_accuracy, nearest_neighbor_accuracy, reconstruction_ratio
from ganscale.train.module import GANModule, phase_seed

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MNIST = os.environ.get("GANSCALE_SHARED_DATA", os.path.join(REPO, "..", "shared", "data")) + "/mnist"
TINY = ["game.name=bigan", "game.condition=none", "model.z_dim=3", "game.bigan.width=16", "game.bigan.depth=2",
        "game.bigan.eval_data=", "data.batch_size=8", "trainer.progress_bar=false", "seed=5"]


def module(*extra, shape=(1, 4, 4)) -> GANModule:
    cfg = load_config([], [*TINY, *extra])
    torch.manual_seed(0)
    return GANModule(cfg, DataInfo("image", shape, 0))


def softplus(t):  # log(1 + e^t), written out
    return torch.log1p(torch.exp(t))


def seeded(m, phase: str, sub: int) -> torch.Generator:
    return torch.Generator().manual_seed(phase_seed(m.cfg.seed, m.iteration, m.phase_ids[phase], sub))


@pytest.mark.parametrize("bn", [False, True])
def test_losses_match_hand_computed_values(bn):
    m = module(f"game.bigan.batch_norm={str(bn).lower()}")
    m.iteration = 7
    m.x = torch.rand(8, 1, 4, 4) * 2 - 1
    for phase, loss_fn in (("D_main", m.game.d_main), ("GE_main", m.game.ge_main)):
        m.phase = phase
        loss = loss_fn(m, 0)
        z = torch.rand(8, 3, generator=seeded(m, phase, 0)) * 2 - 1  # uniform on [-1, 1]
        with torch.no_grad():
            r = m.D(m.x, m.E(m.x))  # real pairs (x, E(x))
            f = m.D(m.G(z), z)  # fake pairs (G(z), z)
        if phase == "D_main":  # real pairs labelled 1, fake pairs 0
            want = softplus(-r).mean() + softplus(f).mean()
        else:  # the labels swapped: G and E fool D both ways
            want = softplus(-f).mean() + softplus(r).mean()
        assert torch.allclose(loss, want, atol=1e-6), phase
        assert m.stats["loss/D" if phase == "D_main" else "loss/G"] is not None


def test_simultaneous_update_steps_d_on_the_pairs_ge_was_scored_on():
    """game.bigan.update=simultaneous (the authors' update_both): GE_main runs first; D_main then
    scores the same x, z and codes, as they were before G and E stepped, so D's gradient is taken
    where G's and E's were."""
    m = module("game.bigan.update=simultaneous", "game.bigan.batch_norm=false")
    assert [p.name for p in m.phase_list] == ["GE_main", "D_main"]
    m.iteration = 3
    m.game.start_iteration(m, {"x": torch.rand(8, 1, 4, 4) * 2 - 1})
    m.phase = "GE_main"
    ge_loss = m.game.ge_main(m, 0)
    z = torch.rand(8, 3, generator=seeded(m, "GE_main", 0)) * 2 - 1
    with torch.no_grad():
        code, fake = m.E(m.x), m.G(z)
        for p in [*m.G.parameters(), *m.E.parameters()]:  # G and E step: D must not see it
            p.add_(1.0)
        r, f = m.D(m.x, code), m.D(fake, z)
    assert torch.allclose(ge_loss, softplus(-f).mean() + softplus(r).mean(), atol=1e-6)
    m.phase = "D_main"
    assert torch.allclose(m.game.d_main(m, 0), softplus(-r).mean() + softplus(f).mean(), atol=1e-6)
    alternating = module("game.bigan.batch_norm=false")
    assert [p.name for p in alternating.phase_list] == ["D_main", "GE_main"]


def test_ali_reparameterises_with_the_seeded_noise():
    m = module("game.bigan.encoder=gaussian", "game.bigan.prior=normal", "game.bigan.batch_norm=false")
    m.x, m.phase = torch.rand(8, 1, 4, 4) * 2 - 1, "D_main"
    loss = m.game.d_main(m, 0)
    z = torch.randn(8, 3, generator=seeded(m, "D_main", 0))
    eps = torch.randn(8, 3, generator=seeded(m, "D_main", 1))
    with torch.no_grad():
        mu, log_var = m.E.net(m.x.reshape(8, -1)).chunk(2, dim=1)
        r, f = m.D(m.x, mu + torch.exp(log_var / 2) * eps), m.D(m.G(z), z)
    assert torch.allclose(loss, softplus(-r).mean() + softplus(f).mean(), atol=1e-6)
    assert torch.equal(m.E(m.x), mu)  # the code `ganscale encode` writes: the mean
    assert not torch.allclose(m.E.sample(m.x, eps), mu)



def test_uniform_prior_codes_stay_in_its_support():
    """With z ~ U(-1, 1), E's code is 2 sigmoid(h) - 1 (the authors' logits_to_sample): an unbounded
    code outside [-1, 1] would tell D "real pair" for free. The metrics read h itself."""
    m = module("game.bigan.batch_norm=false")
    x = torch.randn(64, 1, 4, 4) * 50  # large inputs push h far past +-1
    with torch.no_grad():
        h = m.E.net(x.reshape(64, -1))
        z = m.E(x)
    assert h.abs().max() > 1 and z.abs().max() < 1
    assert torch.allclose(z, 2 * torch.sigmoid(h) - 1, atol=1e-6)
    assert torch.equal(m.E.features(x), h)
    assert torch.allclose(m.E.sample(x, None), z)
    ali = module("game.bigan.encoder=gaussian", "game.bigan.prior=normal", "game.bigan.batch_norm=false")
    assert not ali.E.bounded  # a normal prior has no box to stay in

def test_the_encoder_trains_with_the_generator_and_only_then():
    m = module("game.bigan.batch_norm=false")
    m.x, m.phase = torch.rand(8, 1, 4, 4) * 2 - 1, "GE_main"
    m._train("GE")
    m.game.ge_main(m, 0).backward()
    for name in ("E", "G"):
        grads = [p.grad for p in m.net(name).parameters()]
        assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0, name
    assert all(p.grad is None for p in m.D.parameters())  # D is frozen in its opponents' phase
    m.zero_grad()
    m.phase = "D_main"
    m._train("D")
    m.game.d_main(m, 0).backward()
    assert all(p.grad is None for n in ("E", "G") for p in m.net(n).parameters())
    assert {id(p) for p in m.player_parameters("GE")} == {id(p) for p in [*m.G.parameters(), *m.E.parameters()]}


def test_training_moves_the_encoder_and_logs_its_loss():
    cfg = load_config([], [*TINY, "model.z_dim=2", "data.kind=toy", "trainer.max_iters=3", "trainer.log_every=1"])
    L.seed_everything(cfg.seed, verbose=False)
    dm = ToyDataModule(cfg)
    m = GANModule(cfg, dm.info)
    before = {n: [p.detach().clone() for p in m.net(n).parameters()] for n in ("G", "E", "D")}
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=-1, max_steps=-1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0, callbacks=[StopAt(3)])
    trainer.fit(m, datamodule=dm)
    assert m.iteration == 3
    for n, old in before.items():
        moved = [not torch.equal(a, b.detach()) for a, b in zip(old, m.net(n).parameters())]
        assert all(moved), f"{n}: some parameters never moved"
    assert {"loss/E", "loss/G", "loss/D"} <= set(m.stats) and m.num_skipped == {"GE": 0, "D": 0}


def test_config_errors_name_the_problem():
    with pytest.raises(Exception, match="encoder='vae'"):
        load_config([], [*TINY, "game.bigan.encoder=vae"])
    with pytest.raises(UserError, match="game.condition=none"):
        module("game.condition=class")


def test_nearest_neighbor_and_probe_on_constructed_codes():
    g = torch.Generator().manual_seed(0)
    centers = torch.eye(4) * 10
    ytr, yte = torch.arange(400) % 4, torch.arange(100) % 4
    ztr = centers[ytr] + torch.randn(400, 4, generator=g)
    zte = centers[yte] + torch.randn(100, 4, generator=g)
    assert nearest_neighbor_accuracy(ztr, ytr, zte, yte, chunk=7) == 1.0
    assert linear_probe_accuracy(ztr, ytr, zte, yte) == 1.0
    # the nearest neighbour is euclidean: a test code at (1, 0) is nearer (0, 0) than (5, 0)
    assert nearest_neighbor_accuracy(torch.tensor([[0.0, 0], [5.0, 0]]), torch.tensor([0, 1]),
                                     torch.tensor([[1.0, 0]]), torch.tensor([0])) == 1.0
    noise = torch.randn(400, 4, generator=g)  # codes that know nothing of the labels
    assert nearest_neighbor_accuracy(noise, ytr, noise[:100] + 0.01, ytr[:100]) == 1.0  # itself
    assert linear_probe_accuracy(noise, ytr, zte * 0, yte) <= 0.5


def test_reconstruction_ratio_is_error_over_random_pair_error():
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]])
    recon = x + torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 2.0]])
    r = reconstruction_ratio(x, recon)
    err = (1 + 0 + 2) / 3
    # next rows: recon_0 vs x_1, recon_1 vs x_2, recon_2 vs x_0
    base = (math.hypot(2, 4) + math.hypot(3, 4) + math.hypot(6, 10)) / 3
    assert r["recon_err"] == pytest.approx(err) and r["recon_err_random"] == pytest.approx(base)
    assert r["recon_ratio"] == pytest.approx(err / base)
    assert reconstruction_ratio(x, x)["recon_ratio"] == 0.0


@pytest.mark.skipif(not os.path.isdir(MNIST), reason="needs ../shared/data/mnist")
def test_encode_and_eval_cli(tmp_path, capsys):
    run = tmp_path / "run"
    cfg = load_config([], [*TINY, "data.kind=toy"])
    m = GANModule(cfg, DataInfo("image", (1, 28, 28), 0))
    os.makedirs(run / "checkpoints")
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.strategy.connect(m)
    ckpt = str(run / "checkpoints" / "iter_00000000.ckpt")
    trainer.save_checkpoint(ckpt)
    commit(ckpt, {"iteration": 0})
    out = tmp_path / "z.npy"
    assert main(["encode", str(run), "--data", MNIST, "--split", "test", "--out", str(out)]) == 0
    z = np.load(out)
    assert z.shape == (10000, 3) and z.dtype == np.float32
    from ganscale.metrics.classifier import load_digits
    from ganscale.metrics.latent import encode

    np.testing.assert_allclose(z[:5], encode(m.E, load_digits(MNIST, "test")[0][:5]).numpy(), atol=1e-5)
    assert main(["encode", str(run), "--data", str(tmp_path), "--out", str(out)]) == 2
    assert "does not exist; point --data at the folder" in capsys.readouterr().err
    # `ganscale eval` gives the game's own figures (the stored config has no eval data: an override)
    assert main(["eval", str(run), "--out", str(tmp_path / "m.json")]) == 2
    assert "game.bigan.eval_data is empty" in capsys.readouterr().err
    assert main(["eval", str(run), f"game.bigan.eval_data={MNIST}", "game.bigan.eval_train_images=500",
                 "game.bigan.eval_test_images=200", "--out", str(tmp_path / "m.json")]) == 0
    metrics = json.load(open(tmp_path / "m.json"))
    assert metrics["iter"] == 0 and 0.1 < metrics["nn1_acc"] <= 1 and 0 < metrics["recon_ratio"] < 2
    assert 0 <= metrics["probe_acc"] <= 1


@pytest.mark.parametrize("nets", ["authors", "concat"])
def test_nets_put_z_where_the_authors_or_the_concat_design_does(nets):
    m = module(f"game.bigan.nets={nets}")
    D, G, E = m.D, m.G, m.E
    bns = [b for net in (D, G, E) for b in net.modules() if isinstance(b, torch.nn.BatchNorm1d)]
    if nets == "authors":  # x alone enters D's first layer; z is a bias of its second, and G's second
        assert D.net.hidden[0].in_features == 16 and D.net.z_bias[0].in_features == 3
        assert G.net.z_bias[0].in_features == 3
        assert isinstance(D.net.norms[0], torch.nn.Identity) and isinstance(E.net[1], torch.nn.LeakyReLU)
        assert bns and not any(b.affine for b in bns)  # --nogain --nobias
    else:
        assert D.net[0].in_features == 16 + 3 and all(b.affine for b in bns)
    x, z = torch.rand(8, 1, 4, 4) * 2 - 1, torch.rand(8, 3) * 2 - 1
    m.eval()
    assert not torch.allclose(D(x, z), D(x, z.flip(0)))  # D reads the code as well as the image
    assert G(z).shape == (8, 1, 4, 4)
    with pytest.raises(Exception, match="nets='mlp'"):
        load_config([], [*TINY, "game.bigan.nets=mlp"])
