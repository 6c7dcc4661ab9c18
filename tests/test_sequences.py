"""Token sequences (SeqGAN's oracle protocol): token shards, `data synth oracle-sequences`, the
seqgan game and the NLL-under-the-oracle metric.

    python -m pytest -q tests/test_sequences.py
"""

from __future__ import annotations

import csv
import io
import json
import math
import os

import numpy as np
import pytest
import torch

from conftest import backward_phases, cli
from ganscale.config import load_config
from ganscale.data.base import DataInfo
from ganscale.data.synth.oracle import load_oracle, make_oracle
from ganscale.data.synth.oracle_sequences import draw_sequences, synth_oracle_sequences
from ganscale.errors import UserError

VOCAB, LENGTH = 30, 6


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("oracle"))
    synth_oracle_sequences(out, VOCAB, LENGTH, num=50, seed=2, max_samples=20)
    return out


def shards_cfg(folder: str, *extra: str):
    return load_config([], ["data.kind=shards", f"data.shards.urls={folder}", "data.num_workers=0",
                            "data.batch_size=8", "game.name=seqgan", *extra])


# ----------------------------------------------------------------- token shards
def test_token_shards_round_trip_the_oracle_draws(shards):
    from ganscale.data.shards.datamodule import ShardsDataModule
    from ganscale.data.shards.stream import iter_samples

    dm = ShardsDataModule(shards_cfg(shards))
    assert dm.info == DataInfo("tokens", (LENGTH,), 0, VOCAB)
    assert dm.oracle_path == os.path.join(shards, "oracle.safetensors")
    oracle = load_oracle(dm.oracle_path)
    expected = draw_sequences(oracle, 50, seed=3)  # --seed 2: the draws use seed + 1
    read = torch.stack([torch.from_numpy(s["x"]) for s in iter_samples(dm.plan(0, 1, resampled=False, batch=1),
                                                                       dm.decoder)])
    assert read.dtype == torch.int64 and read.shape == (50, LENGTH)
    key = lambda t: sorted(map(tuple, t.tolist()))  # noqa: E731  (the stream shuffles)
    assert key(read) == key(expected)
    batch = next(iter(dm.train_dataloader()))
    batch = dm.on_after_batch_transfer(dm.on_before_batch_transfer(batch))
    assert batch["x"].dtype == torch.int64 and batch["x"].shape == (8, LENGTH)
    assert 0 <= int(batch["x"].min()) and int(batch["x"].max()) < VOCAB


def npy(arr) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()


def test_token_decoder_refuses_pickles_bad_shapes_and_ids():
    from ganscale.data.shards.decode import CorruptSample, TokenDecoder

    d = TokenDecoder(LENGTH, VOCAB)
    g = np.random.default_rng(0)
    assert d({"tokens.npy": npy(np.arange(LENGTH, dtype=np.uint16))}, g)["x"].dtype == np.int64
    for sample, why in (({"tokens.npy": npy(np.array([{"a": 1}], dtype=object))}, "cannot read"),  # a pickle
                        ({"tokens.npy": npy(np.zeros(LENGTH + 1, np.int64))}, "shape"),
                        ({"tokens.npy": npy(np.full(LENGTH, VOCAB, np.int64))}, "outside"),
                        ({"tokens.npy": b"junk"}, "cannot read"),
                        ({"png": b""}, "missing key tokens.npy")):
        with pytest.raises(CorruptSample, match=why):
            d(sample, g)


def test_synth_oracle_sequences_from_the_cli(tmp_path):
    from ganscale.data.shards.verify import verify

    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    r = cli("data", "synth", "oracle-sequences", a, "--vocab", "40", "--length", "5", "--num", "64",
            "--max-samples", "32", "--seed", "7")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "wrote 64 oracle sequences (vocab 40, length 5) into 2 shards" in r.stdout
    m = json.load(open(os.path.join(a, "manifest.json")))
    assert (m["token_vocab"], m["token_length"], m["oracle"], m["fields"]) == (40, 5, "oracle.safetensors",
                                                                                ["tokens.npy"])
    oracle_file = os.path.join(a, "oracle.safetensors")
    assert all(torch.equal(x, y) for x, y in zip(load_oracle(oracle_file).state_dict().values(),
                                                 make_oracle(7, vocab=40, length=5).state_dict().values()))
    # the same oracle loaded and the same seed give the same bytes (a second split takes another seed)
    synth_oracle_sequences(b, num=64, seed=7, oracle_path=oracle_file, max_samples=32)
    assert open(os.path.join(a, "data-000001.tar"), "rb").read() == open(os.path.join(b, "data-000001.tar"),
                                                                          "rb").read()
    assert verify(b)[0] == []
    # bad input: one clear error naming the fix, exit 2 from the CLI
    r = cli("data", "synth", "oracle-sequences", str(tmp_path / "c"), "--oracle", str(tmp_path / "none.safetensors"))
    assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
    for kwargs, why in (({"oracle_path": oracle_file, "length": 9}, "differs from the oracle"),
                        ({"vocab": 1}, "must be >= 2"), ({"num": 0}, "must be >= 1")):
        with pytest.raises(UserError, match=why):
            synth_oracle_sequences(str(tmp_path / "c"), **kwargs)
    with pytest.raises(UserError, match="--overwrite"):
        synth_oracle_sequences(a, 40, 5, num=8)
    with open(os.path.join(tmp_path, "bad.safetensors"), "wb") as f:
        f.write(b"not safetensors")
    with pytest.raises(UserError, match="not a readable safetensors"):
        synth_oracle_sequences(str(tmp_path / "c"), oracle_path=os.path.join(tmp_path, "bad.safetensors"))


# ----------------------------------------------------------------- the metric
def lstm_step(oracle, x: int, h: torch.Tensor, c: torch.Tensor):
    """One LSTM step written out (torch's gate order i, f, g, o)."""
    w = dict(oracle.named_parameters())
    gates = w["lstm.weight_ih_l0"] @ w["embed.weight"][x] + w["lstm.bias_ih_l0"] \
        + w["lstm.weight_hh_l0"] @ h + w["lstm.bias_hh_l0"]
    i, f, g, o = gates.chunk(4)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(c)
    return torch.log_softmax(w["out.weight"] @ h + w["out.bias"], 0), h, c


def test_oracle_nll_equals_a_hand_computation():
    from ganscale.metrics.oracle import oracle_nll

    oracle = make_oracle(seed=1, vocab=3, length=2, emb=2, hidden=2)
    seqs = torch.tensor([[a, b] for a in range(3) for b in range(3)])
    logp = []
    for a, b in seqs.tolist():
        h = c = torch.zeros(2)
        l1, h, c = lstm_step(oracle, 3, h, c)  # the start token is id `vocab`
        l2, _, _ = lstm_step(oracle, a, h, c)
        logp.append(float(l1[a] + l2[b]))
    assert math.fsum(math.exp(v) for v in logp) == pytest.approx(1.0, abs=1e-5)  # a distribution over sequences
    tokens = torch.cat([seqs, seqs[:4]])  # repeats count
    hand = -sum(logp + logp[:4]) / tokens.numel()
    assert oracle_nll(oracle, tokens) == pytest.approx(hand, rel=1e-5)
    with pytest.raises(UserError, match="length 2"):
        oracle_nll(oracle, torch.zeros(3, 4, dtype=torch.long))
    with pytest.raises(UserError, match="vocabulary"):
        oracle_nll(oracle, torch.full((3, 2), 3))


# ----------------------------------------------------------------- the game
def game_module(estimator: str, *extra: str):
    from ganscale.train.module import GANModule

    cfg = load_config([], ["game.name=seqgan", f"model.discrete.estimator={estimator}", "data.batch_size=8",
                           "model.discrete.sequence.d_channels=4", "model.discrete.bgan_samples=3", *extra])
    return GANModule(cfg, DataInfo("tokens", (LENGTH,), 0, VOCAB))


def run_phases(m, x) -> list[str]:
    m.game.start_iteration(m, {"x": x})
    for net in m.game_nets():
        net.zero_grad()
    return backward_phases(m)


@pytest.mark.parametrize("estimator,extra", [("reinforce", []), ("reinforce", ["model.discrete.sequence.rollouts=2"]),
                                             ("gumbel", []), ("gumbel_st", []), ("bgan", [])])
def test_every_estimator_trains_G_after_mle_pretraining(estimator, extra):
    torch.manual_seed(0)
    m = game_module(estimator, "model.discrete.sequence.pretrain_iters=2", "model.discrete.sequence.d_warmup_iters=1",
                    *extra)
    x = torch.randint(VOCAB, (8, LENGTH))
    steps = []
    for it in range(3):
        m.iteration = it
        steps.append(run_phases(m, x))
    assert steps == [["G_mle"], ["D_main", "G_mle"], ["D_main", "G_main"]]
    grads = [p.grad for p in m.G.parameters()]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)
    s = m.sample(5, seed=3)
    assert s.shape == (5, LENGTH) and torch.equal(s, s.round()) and torch.equal(s, m.sample(5, seed=3))


def test_g_every_spaces_the_adversarial_G_steps_but_not_the_mle_or_D_ones():
    """The engine runs a phase at iterations i with i % every == 0 (tests/test_game_engine.py)."""
    m = game_module("reinforce", "model.discrete.sequence.g_every=3")
    assert {name: m.phase_by_name(name).every for name in ("D_main", "G_mle", "G_main")} == \
        {"D_main": 1, "G_mle": 1, "G_main": 3}


def test_mle_mode_is_teacher_forcing_only():
    m = game_module("reinforce", "model.discrete.sequence.mode=mle")
    x = torch.randint(VOCAB, (8, LENGTH))
    for it in (0, 5000):
        m.iteration = it
        assert run_phases(m, x) == ["G_mle"]
    with torch.no_grad():
        assert m.stats["loss/G/mle"] == pytest.approx(float(-m.G.log_probs(x).mean()), rel=1e-6)


def test_rollout_rewards_end_with_the_sequence_reward():
    m = game_module("reinforce", "model.discrete.sequence.rollouts=3")
    m.game.start_iteration(m, {"x": torch.randint(VOCAB, (8, LENGTH))})
    m.phase = "G_main"
    x = m.G(m.noise(8))
    r = m.game.reward(m, x)
    q = m.game.rollout_rewards(m, x, r)
    assert q.shape == (8, LENGTH) and torch.equal(q[:, -1], r)
    # a completion of the whole sequence but the last token keeps the prefix
    done = m.G.continue_from(x[:, :LENGTH - 1], torch.rand(8, 1))
    assert torch.equal(done[:, :-1], x[:, :-1])


def test_seqgans_reward_is_D_probability_and_its_loss_takes_no_baseline():
    """reward=prob, baseline=false: G's loss is SeqGAN's -mean_t D(x) log p(x_t | x_<t), by hand."""
    torch.manual_seed(0)
    m = game_module("reinforce", "model.discrete.sequence.reward=prob")
    m.game.start_iteration(m, {"x": torch.randint(VOCAB, (8, LENGTH))})
    m.iteration, m.phase = 0, "G_main"
    with_baseline = float(m.game.g_main(m, 0).detach())
    m.game.sc.baseline = False
    without = float(m.game.g_main(m, 0).detach())  # the same draws: they are seeded by (iteration, phase, sub)
    with torch.no_grad():
        x = m.G(m.noise(8))
        reward, log_p = torch.sigmoid(m.D(x)), m.G.log_probs(x)
    assert 0 < float(reward.min()) and float(reward.max()) < 1
    assert float(m.stats["discrete/reward"]) == pytest.approx(float(reward.mean()), rel=1e-6)
    assert without == pytest.approx(float(-(reward[:, None] * log_p).mean()), rel=1e-5)
    # the baseline on the first adversarial iteration is the batch's mean reward: centred advantages
    centred = -((reward - reward.mean())[:, None] * log_p).mean()
    assert with_baseline == pytest.approx(float(centred), rel=1e-4, abs=1e-6)


def test_bad_sequence_settings_are_user_errors():
    with pytest.raises(UserError, match="reward='logit'.*log_d, prob"):
        load_config([], ["model.discrete.sequence.reward=logit"])
    with pytest.raises(UserError, match="adv_lr=-0.1 must be >= 0"):
        load_config([], ["model.discrete.sequence.adv_lr=-0.1"])
    with pytest.raises(UserError, match="g_every=0 must be >= 1"):
        load_config([], ["model.discrete.sequence.g_every=0"])
    with pytest.raises(UserError, match="reward=prob.*sigmoid D"):
        game_module("reinforce", "model.discrete.sequence.reward=prob", "loss.name=hinge")


def test_seqgan_needs_token_data():
    from ganscale.train.module import GANModule

    cfg = load_config([], ["game.name=seqgan"])
    with pytest.raises(UserError, match="oracle-sequences"):
        GANModule(cfg, DataInfo("points", (2,), 0))


@pytest.mark.slow  # fresh processes: train, eval, sample
def test_seqgan_trains_from_the_cli_and_eval_scores_it_under_the_oracle(shards, tmp_path):
    import shutil

    runs, shards = str(tmp_path / "runs"), shutil.copytree(shards, str(tmp_path / "shards"))
    r = cli("train", "configs/sequences/seqgan.yaml", f"data.shards.urls={shards}", f"run.root={runs}", "run.name=s",
            "trainer.max_iters=4", "trainer.eval_every=4", "trainer.ckpt_every=4", "eval.num_samples=100",
            "model.discrete.sequence.pretrain_iters=2", "model.discrete.sequence.d_warmup_iters=1",
            "model.discrete.sequence.adv_lr=1e-3", "trainer.log_every=1", "data.batch_size=8", "wandb.mode=disabled")
    assert r.returncode == 0, r.stderr[-3000:]
    # G's learning rate: optim.G.lr (the shipped 0.01) while pretraining, adv_lr once adversarial
    lrs = [float(row["lr/G"]) for row in csv.DictReader(open(os.path.join(runs, "s", "metrics.csv"))) if row["lr/G"]]
    assert lrs[0] == pytest.approx(1e-2) and lrs[-1] == pytest.approx(1e-3), lrs
    final = json.load(open(os.path.join(runs, "s", "final_metrics.json")))
    # a G that emits a sequence of the oracle's own distribution scores about the oracle's entropy; any
    # G scores at most what the worst ids would; both far from 0 and finite
    assert final["iter"] == 4 and 0 < final["oracle_nll"] < 50
    r = cli("eval", os.path.join(runs, "s"), "eval.num_samples=100")
    assert r.returncode == 0, r.stderr[-3000:]
    assert 0 < json.loads(r.stdout[:r.stdout.rindex("}") + 1])["oracle_nll"] < 50
    out = str(tmp_path / "tokens.npy")
    r = cli("sample", os.path.join(runs, "s"), "--num", "4", "--out", out)
    assert r.returncode == 0, r.stderr[-2000:]
    tokens = np.load(out)
    assert tokens.dtype == np.int64 and tokens.shape == (4, LENGTH) and 0 <= tokens.min() and tokens.max() < VOCAB
    os.remove(os.path.join(shards, "oracle.safetensors"))
    r = cli("eval", os.path.join(runs, "s"), "eval.num_samples=100")
    assert r.returncode == 2 and "does not exist" in r.stderr, r.stderr[-2000:]


# ----------------------------------------------------------------- benchmarks/seqgan_oracle.py
def _draws(mean: float, spread: float) -> dict:
    vals = [mean - 2 * spread, mean - spread, mean, mean + spread, mean + 2 * spread]
    import statistics

    return {"mean": mean, "std": statistics.stdev(vals), "draws": vals}


def _report(tmp_path, adversarial_end: float, spread: float = 0.001) -> str:
    import sys

    from conftest import REPO

    sys.path.insert(0, os.path.join(REPO, "benchmarks"))
    import seqgan_oracle

    doc = str(tmp_path / "discrete.md")
    args = seqgan_oracle.parse_args(["--doc", doc, "--iters", "4000", "--mle-iters", "6000"])
    recipe = {"g_lr": 0.01, "adv_lr": 0.003, "d_lr": 0.001, "g_every": 5, "reward": "prob", "baseline": True,
              "rollouts": 0, "baseline_decay": 0.9, "clip_norm": 5.0}
    seqgan_oracle.write_doc(args, {
        "cpu": "2 CPU cores", "oracle_self_nll": 5.9, "untrained_nll": 11.2,
        "mle": {"curve": {2500: 8.42, 3000: 8.37, 3500: 8.38, 6000: 8.40}, "nll_test": 7.8,
                "plateau": {3000: _draws(8.370, spread), 3500: _draws(8.380, spread), 6000: _draws(8.400, spread)}},
        "adversarial": {"reinforce": {"curve": {2500: 8.42, 3000: 8.37, 3500: 8.36, 4000: 8.36},
                                      "nll_test": 7.7, "recipe": recipe, "end": _draws(adversarial_end, spread)}}})
    return open(doc).read()


def test_benchmark_judges_the_bar_on_several_draws_against_the_best_mle_checkpoint(tmp_path):
    text = _report(tmp_path, 8.35)
    assert "| MLE, best point of its curve (iteration 3000) | 3000 + 0 | 8.370 |" in text
    assert "| adversarial, `reinforce`, end | 3000 + 200 | 8.360 |" in text  # 1000 iterations, G every 5th
    assert "G's gradient norm clipped at 5 (`optim.G.clip_norm`" in text
    assert "| MLE, iteration 3000 | 8.3700 ± 0.0016 |" in text and "| MLE plateau level (mean of the rows above) | 8.3833 |" in text
    assert "against the plateau's best checkpoint, iteration 3000: 8.3700" in text
    assert "`reinforce` ends at 8.3500, +0.0200 nats per token below it" in text and "**met**" in text
    # 0.004 below the best checkpoint, but the draws spread by 0.005: within twice the standard error
    assert "**not met: a tie within the noise**" in _report(tmp_path, 8.366, spread=0.005)
    assert "**not met**" in _report(tmp_path, 8.375)  # below the MLE end, above its best checkpoint
    import seqgan_oracle  # (on the path: _report put it there)

    exact = lambda v: {"mean": v, "std": 0.0, "draws": [v] * 5}  # noqa: E731
    assert seqgan_oracle.verdict(exact(8.35), exact(8.36))[0] == "met"
    with pytest.raises(SystemExit):  # the baseline must cover the adversarial runs
        seqgan_oracle.parse_args(["--iters", "9000"])  # the MLE run's default 8000 falls short
