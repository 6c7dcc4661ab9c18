"""The text-to-image games (ganscale.games.dfgan / stackgan / stackganpp), the `text` condition
kind, `ganscale sample --text/--captions` and the captioned-digits judge.

Distributed equivalence of the games (DDP, ZeRO-1/2 == one process) is in
tests/test_distributed_equivalence.py (cases dfgan, stackgan of tests/dist_worker.py)."""

from __future__ import annotations

import os

import lightning as L
import pytest
import torch

import dist_worker as w
from ganscale.cli import main as cli_main
from ganscale.cli.sample import parse_captions
from ganscale.data.captions import caption_index, uniform_draws
from ganscale.errors import UserError
from ganscale.train.module import GANModule, phase_seed

STACKGANPP = [*w.TEXT, "game.name=stackganpp", "model.arch=stackganpp", "model.stackganpp.branches=2",
              "model.stackganpp.text_dim=16", "model.stackganpp.ca_dim=8", "model.stackganpp.gf=2",
              "model.stackganpp.df=2", "model.stackganpp.res_blocks=1", "game.text.colour_weight=1.0"]


def build(case: str, batch: int = 4, extra=()):
    cfg = w.make_cfg(case, "single", 1, batch, extra)
    # the nets' initial weights from a fixed seed, not from whatever tests ran before: at these
    # widths (2 channels at 64 px) some draws leave G's z path dead after two steps
    torch.manual_seed(0)
    dm = w.TextGlobalBatches(cfg, w.TEXT_SIZE[case])
    return cfg, dm, GANModule(cfg, dm.info)


def first_batch(dm):
    return next(iter(dm.train_dataloader()))


def test_text_kind_draws_each_images_caption_from_the_seeded_global_draw():
    cfg, dm, m = build("dfgan", batch=6)
    batch = first_batch(dm)
    m.iteration = 5
    c = m.condition.real(m, batch, slice(0, 6))
    g = torch.Generator().manual_seed(phase_seed(cfg.seed, 5, 0, 16))  # phase 0 (D_main), sub 16: chunk 0
    j = caption_index(uniform_draws(6, g), batch["caption_counts"])
    assert (j < batch["caption_counts"]).all()
    ar = torch.arange(6)
    expect = m.T.encoder(batch["caption_ids"][ar, j], batch["caption_lengths"][ar, j])
    torch.testing.assert_close(c.sentence, expect.sentence)
    assert c.words.shape[:2] == (6, 6) and c.mask.shape == (6, 6)
    # the same iteration draws the same captions; frozen encoder: no gradients, eval mode after .train()
    torch.testing.assert_close(m.condition.real(m, batch, slice(0, 6)).sentence, c.sentence)
    m.train()
    assert not m.T.training and not any(p.requires_grad for p in m.T.parameters())
    assert m.condition.fake(m, 6, c) is c


def test_text_kind_rank_rows_equal_the_one_process_rows(monkeypatch):
    """Rank 1 of 2 picks, for its half of the global batch, the captions one process picks."""
    _, dm, m = build("dfgan", batch=8)
    batch = first_batch(dm)
    whole = m.condition.real(m, batch, slice(0, 8))
    half = {k: v[4:] for k, v in batch.items()}
    monkeypatch.setattr(GANModule, "_world", property(lambda self: 2))
    monkeypatch.setattr(GANModule, "_rank", property(lambda self: 1))
    torch.testing.assert_close(m.condition.real(m, half, slice(0, 4)).sentence, whole.sentence[4:])


def test_text_kind_refuses_batches_without_captions():
    _, dm, m = build("dfgan")
    with pytest.raises(UserError, match="captions"):
        m.condition.real(m, {"x": torch.zeros(4, 3, 32, 32)}, slice(0, 4))


def fit(case: str, iters: int = 2, extra=(), tmp_path=None):
    cfg, dm, m = build(case, extra=[f"trainer.max_iters={iters}", *extra])
    before = {n: {k: v.clone() for k, v in m.net(n).state_dict().items()} for n in ("T", "G")}
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=-1, max_steps=-1, logger=False,
                        callbacks=[w.TrainLogger(cfg)], enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, **w.trainer_kwargs(cfg))
    trainer.fit(m, datamodule=dm)
    ckpt = None
    if tmp_path is not None:
        ckpt = str(tmp_path / "run.ckpt")
        trainer.save_checkpoint(ckpt)
    return m, before, ckpt


@pytest.mark.parametrize("case", ["dfgan", "stackgan", "stackganpp"])
def test_game_trains_g_and_d_and_keeps_the_encoder_frozen(case, monkeypatch):
    if case == "stackganpp":
        monkeypatch.setitem(w.CASES, case, STACKGANPP)
        monkeypatch.setitem(w.TEXT_SIZE, case, 128)
    m, before, _ = fit(case)
    assert m.iteration == 2 and m.num_skipped == {"G": 0, "D": 0}
    for k, v in m.T.state_dict().items():
        assert torch.equal(v, before["T"][k]), k
    assert any(not torch.equal(v, before["G"][k]) for k, v in m.G.state_dict().items())
    assert all(torch.isfinite(v) for k, v in m.stats.items()), m.stats
    expected = {"dfgan": "reg/D/ma_gp", "stackgan": "loss/G/kl", "stackganpp": "loss/G/colour"}[case]
    assert expected in m.stats and "loss/D/wrong" in m.stats
    c = m.T.encode(["a red 3 in the top left", "the number seven in blue at the bottom right", "a red 3"])
    x = m.sample(3, seed=1, y=c)  # z and the CA noise from the seed: the same seed, the same images
    assert torch.equal(x, m.sample(3, seed=1, y=c)) and not torch.equal(x, m.sample(3, seed=2, y=c))


def test_damsm_term_enters_g_loss_through_the_frozen_image_encoder():
    """game.text.damsm_weight: G's loss is the adversarial term plus lambda x the DAMSM loss of its
    images (AttnGAN); the encoder pair, image half included, stays frozen."""
    _, _, m = build("dfgan", extra=["game.text.damsm_weight=5"])
    image_before = {k: v.clone() for k, v in m.T.image.state_dict().items()}
    m, _, _ = fit("dfgan", extra=["game.text.damsm_weight=5"])
    st = m.stats
    assert float(st["loss/G/damsm"]) > 0
    torch.testing.assert_close(st["loss/G"], st["loss/G/adv"] + 5 * st["loss/G/damsm"])
    torch.testing.assert_close(st["loss/G/damsm"], st["loss/G/damsm_sentence"] + st["loss/G/damsm_word"])
    assert not any(p.requires_grad for p in m.T.image.parameters()) and not m.T.image.training
    for k, v in m.T.image.state_dict().items():
        assert torch.equal(v, image_before[k]), k
    # gradients reach G's images through the frozen encoder
    c = m.T.encode(["a red 3 in the top left", "the number seven in blue at the bottom right"])
    x = torch.zeros(2, 3, 32, 32, requires_grad=True)
    loss, _ = m.T.matching_loss(x, c)
    loss.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    # off (the default; the dfgan case turns it on): no image encoder is kept
    assert not hasattr(build("dfgan", extra=["game.text.damsm_weight=0"])[2].T, "image")


def test_resume_switching_damsm_on_or_off_keeps_the_encoder_from_its_file():
    """The image half of the frozen encoder exists only with damsm_weight > 0: a checkpoint from a
    run without it restores into a run with it (the half comes from the encoder file, as in a fresh
    run), and the other way round; every trained weight comes from the checkpoint."""
    off = build("dfgan", extra=["game.text.damsm_weight=0"])[2]
    on = build("dfgan", extra=["game.text.damsm_weight=5"])[2]
    with torch.no_grad():
        for p in off.G.parameters():
            p.add_(1.0)  # trained weights that differ from a fresh build's
    for src, dst in ((off, on), (on, off)):
        ckpt = {"state_dict": {k: v.clone() for k, v in src.state_dict().items()}, "ganscale": {"iteration": 7}}
        from_file = {k: v.clone() for k, v in dst.state_dict().items()}
        dst.on_load_checkpoint(ckpt)
        dst.load_state_dict(ckpt["state_dict"])  # strict: nothing missing, nothing unexpected
        for k, v in dst.state_dict().items():
            expect = src.state_dict()[k] if k in src.state_dict() and not k.startswith("T.image.") else from_file[k]
            assert torch.equal(v, expect), k
        assert dst.iteration == 7
    # a trained net's missing weights are still an error: one, naming them
    ckpt = {"state_dict": {k: v for k, v in off.state_dict().items() if not k.startswith("G.")}}
    with pytest.raises(UserError, match=r"do not fit the ones this config builds \(missing: G\."):
        on.on_load_checkpoint(ckpt)


def test_damsm_weight_needs_an_encoder_file():
    from ganscale.games.text2img_config import TextGameConfig

    assert any("damsm_weight=5.0 needs the image encoder" in e for e in TextGameConfig(damsm_weight=5.0).check(None))
    assert TextGameConfig(damsm_weight=5.0, encoder="enc.safetensors").check(None) == []


def test_games_refuse_a_non_text_condition():
    with pytest.raises(UserError, match="game.condition=text"):
        build("dfgan", extra=["game.condition=none"])


@pytest.mark.parametrize("key", ["reg.r1_gamma=1.0", "reg.gp_weight=10.0", "unroll.steps=2"])
def test_games_refuse_penalties_they_do_not_run(key):
    with pytest.raises(UserError, match="has no WGAN-GP, R1 or unrolled D steps"):
        build("stackgan", extra=[key])


def test_spectral_norm_key_constrains_the_named_text_nets():
    from torch.nn.utils import parametrize

    def normed(net):
        return [n for n, mod in net.named_modules() if parametrize.is_parametrized(mod, "weight")]

    m = build("stackgan", extra=["reg.spectral_norm=[D]"])[2]
    assert normed(m.D) and not normed(m.G)
    # every conv and linear layer of D, none left out
    layers = [n for n, mod in m.D.named_modules() if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear))]
    assert sorted(normed(m.D)) == sorted(layers)
    assert not normed(build("stackgan")[2].D)


def test_stage2_needs_a_stage1_run():
    cfg = w.make_cfg("stackgan", "single", 1, 4, ["model.stackgan.stage=2"])
    with pytest.raises(UserError, match="game.text.stage1"):
        GANModule(cfg, w.TextGlobalBatches(cfg, 256).info)


def test_parse_captions():
    assert parse_captions("a red 3", None, 3) == ["a red 3"] * 3
    assert parse_captions(None, None, 3) is None
    with pytest.raises(UserError, match="not both"):
        parse_captions("a", "f.txt", 1)
    with pytest.raises(UserError, match="empty"):
        parse_captions("  ", None, 1)
    with pytest.raises(UserError, match="cannot read"):
        parse_captions(None, "/nonexistent/captions.txt", 1)


def test_sample_cli_text_captions_and_unknown_words(tmp_path, capsys):
    _, _, ckpt = fit("dfgan", iters=1, tmp_path=tmp_path)
    caps = tmp_path / "caps.txt"
    caps.write_text("a red 3 in the top left\n\nthe number seven in blue at the bottom right\n")
    out = tmp_path / "x.npy"
    assert cli_main(["sample", ckpt, "--captions", str(caps), "--num", "3", "--out", str(out)]) == 0
    x = __import__("numpy").load(out)
    assert x.shape == (3, 32, 32, 3) and x.dtype.name == "uint8"
    grid = tmp_path / "grid.png"
    assert cli_main(["sample", ckpt, "--text", "a red 3 in the top left", "--num", "2", "--out", str(grid)]) == 0
    assert os.path.getsize(grid) > 0
    assert cli_main(["sample", ckpt, "--text", "a purple 3 in the zorp corner", "--num", "2",
                     "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "purple" in err and "zorp" in err and "corner" in err and "Traceback" not in err
    assert cli_main(["sample", ckpt, "--num", "2", "--out", str(out)]) == 2
    assert "--text" in capsys.readouterr().err
    assert cli_main(["sample", ckpt, "--text", "a red 3 in the top left", "--standing-stats", "4",
                     "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "not for text-to-image runs" in err and "--standing-stats" in err and "Traceback" not in err


def test_judge_reads_the_truth_the_captions_state():
    import numpy as np

    from ganscale.data.synth.captioned_digits import canonical, draw_layouts
    from ganscale.metrics.digits_judge import DigitJudge, parse_caption, quadrants, targets_of

    layouts = draw_layouts(np.arange(100) % 10, 50, seed=1, max_digits=2, holdout=[])
    for lay in layouts:
        assert parse_caption(canonical(lay)) == targets_of([d.truth() for d in lay])
    assert parse_caption("a red 0 in the top left") == [1, 0, 0, 0]
    assert parse_caption("a magenta 9 in the bottom right") == [0, 0, 0, 60]
    with pytest.raises(ValueError):
        parse_caption("the number seven in blue at the top right")
    x = torch.zeros(1, 3, 64, 64)
    x[0, :, :32, 32:] = 1  # top right
    x[0, :, 32:, :32] = 2  # bottom left
    q = quadrants(x)
    assert [float(q[0, i].mean()) for i in range(4)] == [0.0, 1.0, 2.0, 0.0]
    assert DigitJudge(ch=4)(torch.zeros(2, 3, 64, 64)).shape == (2, 4, 61)


def test_stage2_loads_the_stage1_run_frozen(tmp_path):
    m1, _, ckpt = fit("stackgan", iters=1, tmp_path=tmp_path)
    cfg = w.make_cfg("stackgan", "single", 1, 2, ["model.stackgan.stage=2", "model.stackgan.stage2_gf=4",
                                                  "model.stackgan.res_blocks=1", f"game.text.stage1={ckpt}"])
    m2 = GANModule(cfg, w.TextGlobalBatches(cfg, 256).info)
    for k, v in m1.sampler.state_dict().items():
        assert torch.equal(m2.G.stage1.state_dict()[k], v), k
    assert not any(p.requires_grad for p in m2.G.stage1.parameters())
    c = m2.T.encode(["a red 3 in the top left", "the number seven in blue at the bottom right"])
    x, extras = m2.G(torch.randn(2, 8), c, generator=torch.Generator().manual_seed(0))
    assert x.shape == (2, 3, 256, 256) and extras["stage1"].shape == (2, 3, 64, 64)


def test_nearest_mismatch_picks_among_the_k_nearest_other_captions():
    from ganscale.conditions import TextCondition
    from ganscale.games.text2img import nearest_mismatch

    # rows 0 and 1 hold the same caption (1 up to rounding); 2, 3 and 4 lie at 1, 3 and 10 from them
    s = torch.tensor([[0.0, 0.0], [1e-7, 0.0], [1.0, 0.0], [3.0, 0.0], [10.0, 0.0]])
    pool = TextCondition(s)
    g = torch.Generator().manual_seed(0)
    assert nearest_mismatch(1)(pool, g).tolist() == [2, 2, 1, 2, 3] or \
        nearest_mismatch(1)(pool, g).tolist() == [2, 2, 0, 2, 3]  # row 2: rows 0 and 1 tie
    # k = 2: each row draws among its 2 nearest other captions, the twin never among them
    allowed = {0: {2, 3}, 1: {2, 3}, 2: {0, 1}, 3: {2, 0, 1}, 4: {3, 2}}
    seen = {i: set() for i in allowed}
    for seed in range(40):
        picked = nearest_mismatch(2)(pool, torch.Generator().manual_seed(seed)).tolist()
        for i, j in enumerate(picked):
            assert j in allowed[i], (i, j)
            seen[i].add(j)
    assert seen[0] == {2, 3} and seen[4] == {2, 3}  # both candidates drawn over the seeds
    # the pick is the seed's: the same generator state gives the same rows
    a = nearest_mismatch(2)(pool, torch.Generator().manual_seed(7))
    assert torch.equal(a, nearest_mismatch(2)(pool, torch.Generator().manual_seed(7)))
    # a batch over 25 rows (where cdist would take its matrix-product path): never the row itself,
    # always the nearest other caption
    big = torch.randn(64, 16, generator=torch.Generator().manual_seed(1))
    picked = nearest_mismatch(1)(TextCondition(big), g)
    d = ((big[:, None] - big[None]) ** 2).sum(-1).fill_diagonal_(float("inf"))
    assert torch.equal(picked, d.argmin(1))
    # a batch of one caption has no other: any other row, never the row itself
    picked = nearest_mismatch(1)(TextCondition(torch.zeros(3, 2)), g)
    assert all(j != i for i, j in enumerate(picked.tolist()))


def test_mismatch_key_chooses_ds_wrong_pairs(monkeypatch):
    """game.text.mismatch=nearest hands D's wrong pairs the nearest-caption pick; shift (the default) none."""
    picks = {}
    for mode in ("shift", "nearest"):
        cfg, dm, m = build("stackgan", batch=6, extra=[f"game.text.mismatch={mode}", "game.text.mismatch_k=1"])
        seen = []
        real = m.mismatched
        monkeypatch.setattr(m, "mismatched", lambda c, *a, pick=None, **k: seen.append((c, pick)) or
                            real(c, *a, pick=pick, **k))
        m.game.start_iteration(m, first_batch(dm))
        m.phase = "D_main"
        m.game.d_main(m, 0)
        (c, picks[mode]), = seen
    assert picks["shift"] is None
    s = c.sentence
    d = torch.cdist(s, s).fill_diagonal_(float("inf"))
    chosen = picks["nearest"](c, torch.Generator().manual_seed(0))
    assert torch.allclose(d.gather(1, chosen[:, None])[:, 0], d.min(1).values)
    with pytest.raises((UserError, ValueError), match="mismatch='hardest'"):
        w.make_cfg("stackgan", "single", 1, 4, ["game.text.mismatch=hardest"])
