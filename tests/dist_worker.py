"""Equivalence runs for the distributed tests (not collected by pytest: no test_ prefix).

    torchrun --standalone --nproc_per_node=2 tests/dist_worker.py OUT_DIR [STRATEGY ...]

Every rank trains each CASE under each STRATEGY (ddp, zero1, zero2) for ITERS iterations with
per-rank batch B on its slice of a fixed global real batch, and saves G, D, G_ema, the skip counts
and the logged (cross-rank reduced) metrics to OUT_DIR/<case>-<strategy>-rank<r>.pt.
tests/test_distributed_equivalence.py compares them with `run_case(case, "single", ...)` run in
one process with batch 2B. One launch serves all cases: process start-up (torch, Lightning,
DeepSpeed imports) dominates on CPU.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
import traceback

import lightning as L
import torch
from lightning.pytorch.loggers.logger import Logger
from torch.utils.data import DataLoader, IterableDataset

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from ganscale.config import load_config  # noqa: E402
from ganscale.data.base import DataInfo, GANDataModule  # noqa: E402
from ganscale.data.toy import mixture_means, sample_mixture  # noqa: E402
from ganscale.distributed import trainer_kwargs  # noqa: E402
from ganscale.train.callbacks import TrainLogger  # noqa: E402
from ganscale.train.module import GANModule  # noqa: E402
from test_game_engine import RelayGame  # noqa: E402  (a game defined outside the package)

B = 8  # per-rank batch of the distributed runs; the reference uses 2 * B in one process
ITERS = 3
NAN_AT = 1  # iteration whose global batch has NaNs in its second half (rank 1's slice) in case nonfinite,
#            or whose second-half samples send NaN gradients back from D's logits in case nonfinite_grad
BASE = ["model.mlp.G.width=32", "model.mlp.G.depth=2", "model.mlp.D.width=32", "model.mlp.D.depth=2",
        "optim.G.lr=1e-3", "optim.D.lr=1e-3", "gan.ema.decay=0.9", f"trainer.max_iters={ITERS}",
        "reg.r1_gamma=0.0", "trainer.log_every=1", "trainer.progress_bar=false", "seed=3"]
CASES = {
    "plain": [],
    "n_disc2": ["gan.n_disc=2"],
    "unroll3": ["unroll.steps=3", "unroll.second_order=true"],
    "r1": ["reg.r1_gamma=1.0"],
    "gp": ["reg.gp_weight=10.0"],
    "nonfinite": [],
    "nonfinite_grad": [],
    # decaying learning rates reach every strategy's optimizers, and the look-ahead replays them
    # clipping by the synchronised norm (DeepSpeed: the engine's gradient_clipping); bounds below the
    # norms these nets reach, so every step clips
    "clip": ["optim.G.clip_norm=0.02", "optim.D.clip_norm=0.05"],
    "lr_schedule": ["optim.G.schedule=linear", "optim.D.schedule=cosine", "optim.D.final_scale=0.1",
                    "unroll.steps=2"],
    # all ITERS iterations in one Lightning step (trainer.iters_per_step), logged once at its end
    "one_step": ["trainer.iters_per_step=3", "trainer.log_every=3", "gan.n_disc=2"],
}
GAMES = {"relay": RelayGame}
"""Cases that play another game than the GAN: the game defined in tests/test_game_engine.py
(three networks, two players; the adversary steps twice per iteration)."""
CASES["relay"] = ["gan.n_disc=2", "optim.G.lr=1e-2", "optim.D.lr=1e-2"]
# discrete outputs (ganscale/games/discrete.py): REINFORCE's baseline is a cross-rank mean reward,
# BGAN draws M samples per z through the seeded global draws
CASES["discrete_reinforce"] = ["game.name=discrete", "model.discrete.estimator=reinforce"]
CASES["discrete_bgan"] = ["game.name=discrete", "model.discrete.estimator=bgan", "model.discrete.bgan_samples=3",
                          "gan.n_disc=2"]
# text-to-image games (ganscale.games.dfgan / stackgan): captions drawn over the global batch, a
# tiny frozen text encoder, mismatched (wrong) pairs across ranks, MA-GP, the CA noise and the DAMSM term
TEXT = ["game.condition=text", "model.z_dim=8", "optim.G.lr=1e-3", "optim.D.lr=1e-3"]
CASES["dfgan"] = [*TEXT, "game.name=dfgan", "loss.name=hinge", "model.arch=dfgan", "model.dfgan.nf=4",
                  "model.dfgan.text_dim=16",
                  # AttnGAN's DAMSM term in G's loss: its in-batch mismatches couple the global batch's rows
                  "game.text.damsm_weight=1.0",
                  # Adam divides by sqrt(v) + eps: a gradient near 0 (some of D's head weights at the
                  # start) turns rounding-level differences between 2 x b and 2b rows into
                  # lr-sized ones; a larger eps keeps the comparison about the text path
                  "optim.D.eps=1e-3", "optim.G.eps=1e-3"]
CASES["stackgan"] = [*TEXT, "game.name=stackgan", "model.arch=stackgan", "model.stackgan.text_dim=16",
                     "model.stackgan.ca_dim=8", "model.stackgan.gf=4", "model.stackgan.df=4", "gan.n_disc=2",
                     # hard-negative wrong pairs: the nearest captions of the global batch, a seeded pick of 2
                     "game.text.mismatch=nearest", "game.text.mismatch_k=2",
                     # AttnGAN's word attention in G: each row attends over its own caption's words
                     "model.stackgan.word_attention=8"]
TEXT_SIZE = {"dfgan": 32, "stackgan": 64}
NO_BATCHNORM = {"stackgan"}
"""Cases built with BatchNorm replaced by the identity: BatchNorm normalises with each rank's own
batch statistics, so N ranks equal one process only with cross-replica BN (SyncBatchNorm, which
has no CPU kernel); the `bn` runs below check that replicas stay identical with it."""
# BiGAN (ganscale.games.bigan): player GE (G and the encoder) against the joint D(x, z); ALI adds the
# encoder's reparameterisation noise, a second seeded draw. No BatchNorm: its statistics are per rank.
_BIGAN = ["game.name=bigan", "game.condition=none", "model.z_dim=2", "game.bigan.width=16",
          "game.bigan.batch_norm=false", "game.bigan.eval_data="]
CASES["bigan"] = [*_BIGAN, "game.bigan.update=simultaneous"]  # D steps on the pairs GE stepped on
CASES["ali"] = [*_BIGAN, "game.bigan.update=alternating", "game.bigan.encoder=gaussian", "game.bigan.prior=normal"]
# the semi-supervised GAN (ganscale.games.ssl_gan) on the ring with mode indices as labels: its
# labelled stream, D's seeded noise, G's second unlabelled chunk and the feature matching's global means; G without BatchNorm
# (per-rank batch statistics are the one thing that differs, see the bn cases)
CASES["ssl"] = ["game.name=ssl_gan", "gan.n_disc=2", "game.ssl.g_batchnorm=false", "game.ssl.d_widths=[32,16]", "game.ssl.g_width=16",
                "game.ssl.z_dim=8", "game.ssl.num_classes=8", "game.ssl.init_batch=0"]
# InfoGAN (ganscale.games.infogan): Q in D's player, L_I in both players' losses; small nets
# without BatchNorm on random 28 x 28 images
CASES["infogan"] = ["game.name=infogan", "game.infogan.batchnorm=false", "game.infogan.width=32", "game.infogan.ch=4"]
IMAGE_CASES = {"infogan"}
# a registered game other than the GAN: adversarial cryptography (Alice + Bob against Eve, who
# steps twice; the team's loss is a batch mean of per-pair terms, squares of Eve's error included).
# lr 1e-3: Adam scales a near-zero gradient entry's rounding (2 x 32 rows summed vs 64) up to a step
# of order lr, and at 1e-2 one of Eve's weights differed by 2e-5, past the 1e-5 tolerance
CASES["crypto"] = ["game.name=crypto", "game.crypto.bits=8", "optim.G.lr=1e-3", "optim.D.lr=1e-3"]
# token sequences (ganscale/games/sequence.py): MLE pretraining for one iteration (D warms up beside
# it), then REINFORCE with Monte Carlo rollouts (seeded completions over the global batch, a
# cross-rank mean reward for the baseline) or Gumbel-softmax sequences fed back through the LSTM
SEQ = ["game.name=seqgan", "model.discrete.sequence.pretrain_iters=1", "model.discrete.sequence.d_warmup_iters=1",
       "model.discrete.sequence.d_channels=8", "model.discrete.sequence.d_windows=[2,3]", "optim.G.lr=1e-2",
       "optim.D.lr=1e-2"]
CASES["seqgan_reinforce"] = [*SEQ, "model.discrete.estimator=reinforce", "model.discrete.sequence.rollouts=2",
                             "gan.n_disc=2", "model.discrete.sequence.reward=prob",
                             "model.discrete.sequence.adv_lr=5e-3", "model.discrete.sequence.g_every=2"]
# straight-through gradients of tokens the softmax all but rules out are sums that cancel to
# rounding level; Adam would scale those to lr-sized steps (as in the dfgan case): a larger eps
CASES["seqgan_gumbel"] = [*SEQ, "model.discrete.estimator=gumbel_st", "optim.G.eps=1e-3"]
TOKEN_CASES = {"seqgan_reinforce", "seqgan_gumbel"}
TOKENS = DataInfo("tokens", (6,), 0, 12)
"""Sequences of 6 ids in [0, 12): the token cases' data."""
LOGGED = {"relay": ("loss/A", "loss/AB", "skipped/A"), "crypto": ("loss/E", "loss/AB", "bits/eve_vs_AB", "skipped/E"),
          **{c: ("loss/D", "loss/G/mle", "skipped/D") for c in TOKEN_CASES}}
"""The logged keys compared per case (the GAN's otherwise: loss/D, loss/G, skipped/D)."""
STRATEGIES = {
    "single": ["strategy.name=single"],
    "ddp": ["strategy.name=ddp"],
    "zero1": ["strategy.name=deepspeed", "strategy.zero_stage=1"],
    "zero2": ["strategy.name=deepspeed", "strategy.zero_stage=2"],
}


class _GlobalBatchStream(IterableDataset):
    def __init__(self, dm: "SplitGlobalBatches"):
        self.dm = dm

    def __iter__(self):
        dm = self.dm
        n_disc, b, world, rank = dm.cfg.gan.n_disc, dm.cfg.data.batch_size, dm.world_size, dm.rank
        for i in itertools.count():
            g = torch.Generator().manual_seed(1000 + i)
            x = sample_mixture(dm.means, dm.cfg.data.toy.std, n_disc * world * b, g).view(n_disc, world * b, 2)
            if dm.info.kind == "image":
                x = torch.rand(n_disc, world * b, *dm.info.shape, generator=g) * 2 - 1
            if dm.info.kind == "tokens":
                x = torch.randint(dm.info.vocab, (n_disc, world * b, *dm.info.shape), generator=g)
            if dm.nan_at == i:
                x[:, world * b // 2:] = float("nan")
            # a labelled stream beside it (the semi-supervised GAN's): mode indices as labels
            y_lab = torch.randint(len(dm.means), (world * b,), generator=g)
            x_lab = dm.means[y_lab] + dm.cfg.data.toy.std * torch.randn(world * b, 2, generator=g)
            rows = slice(rank * b, (rank + 1) * b)
            yield {"x": x[:, rows].reshape(n_disc * b, *dm.info.shape), "x_lab": x_lab[rows], "y_lab": y_lab[rows]}


class SplitGlobalBatches(GANDataModule):
    """Iteration i's global real batch (n_disc chunks of world x b ring samples); each rank gets
    its slice of every chunk, so N ranks with b see exactly what one process with N x b sees."""

    def __init__(self, cfg, nan_at=None, image=False, tokens=False):
        super().__init__(cfg)
        self.info = DataInfo("image", (1, 28, 28), 0) if image else TOKENS if tokens else DataInfo("points", (2,), 0)
        self.means = mixture_means(cfg.data.toy)
        self.nan_at = nan_at

    def iteration_loader(self):
        return DataLoader(_GlobalBatchStream(self), batch_size=None)


def tiny_encoder_file() -> str:
    """A tiny trained-format text encoder (seeded, so every process writes the same file)."""
    import tempfile

    from ganscale.text.config import TextEncoderConfig
    from ganscale.text.pair import EncoderPair, save_encoder
    from ganscale.text.vocab import Vocab

    path = os.path.join(tempfile.gettempdir(), "ganscale-tests-tiny-text-encoder-v1.safetensors")
    if not os.path.exists(path):
        torch.manual_seed(0)
        vocab = Vocab.build(["a red 3 in the top left", "the number seven in blue at the bottom right"])
        save_encoder(EncoderPair(TextEncoderConfig(word_dim=8, dim=16, image_ch=4, max_len=6), vocab), path)
    return path


class _TextGlobalBatchStream(IterableDataset):
    def __init__(self, dm: "TextGlobalBatches"):
        self.dm = dm

    def __iter__(self):
        dm = self.dm
        n_disc, b, world, rank = dm.cfg.gan.n_disc, dm.cfg.data.batch_size, dm.world_size, dm.rank
        s, n, C, T = dm.info.shape[-1], world * b, 3, 6
        for i in itertools.count():
            g = torch.Generator().manual_seed(2000 + i)
            glob = {"x": torch.rand(n_disc, n, 3, s, s, generator=g) * 2 - 1,
                    "caption_ids": torch.randint(2, 15, (n_disc, n, C, T), generator=g),  # tiny vocabulary: 15 ids
                    "caption_lengths": torch.randint(1, T + 1, (n_disc, n, C), generator=g),
                    "caption_counts": torch.randint(1, C + 1, (n_disc, n), generator=g)}
            yield {k: v[:, rank * b:(rank + 1) * b].flatten(0, 1) for k, v in glob.items()}


class TextGlobalBatches(GANDataModule):
    """Like SplitGlobalBatches, for images with several captions each (token ids of the tiny encoder)."""

    def __init__(self, cfg, size: int):
        super().__init__(cfg)
        self.info = DataInfo("image", (3, size, size), 0)

    def iteration_loader(self):
        return DataLoader(_TextGlobalBatchStream(self), batch_size=None)


class MemoryLogger(Logger):
    """Keeps what TrainLogger logs (already reduced across ranks)."""

    def __init__(self):
        super().__init__()
        self.rows: list[dict] = []

    @property
    def name(self):
        return "memory"

    @property
    def version(self):
        return 0

    def log_hyperparams(self, *args, **kwargs):
        pass

    def log_metrics(self, metrics, step=None):
        self.rows.append(dict(metrics))


def poison_d_gradients(module: GANModule) -> None:
    """In D's phases of iteration NAN_AT, the samples in the second half of the global batch send
    NaN gradients back from D's logits: the losses stay finite, the gradients do not."""

    def hook(net, args, out):
        if module.iteration != NAN_AT or not any(p.requires_grad for p in net.parameters()) or not out.requires_grad:
            return
        b = out.shape[0]
        index = torch.arange(module._rank * b, (module._rank + 1) * b)
        mask = index >= module._world * b // 2
        out.register_hook(lambda g: torch.where(mask, torch.full_like(g, float("nan")), g))

    module.D.register_forward_hook(hook)


@contextlib.contextmanager
def without_batchnorm(active: bool):
    """Networks built inside get the identity where they ask for BatchNorm (see NO_BATCHNORM)."""
    if not active:
        yield
        return
    from unittest import mock

    identity = lambda *args, **kwargs: torch.nn.Identity()  # noqa: E731
    with mock.patch.object(torch.nn, "BatchNorm1d", identity), mock.patch.object(torch.nn, "BatchNorm2d", identity):
        yield


def make_cfg(case: str, strategy: str, world: int, batch: int, extra=()):
    text = [f"game.text.encoder={tiny_encoder_file()}"] if case in TEXT_SIZE else []
    return load_config([], [*BASE, *CASES[case], *STRATEGIES[strategy], f"data.batch_size={batch}",
                            f"trainer.devices={world}", *text, *extra])


def run_case(case: str, strategy: str, world: int, batch: int, extra=(), kwargs=None) -> dict:
    """Train `case` for ITERS iterations; G, D, G_ema, skip counts and logged metrics (on CPU)."""
    cfg = make_cfg(case, strategy, world, batch, extra)
    L.seed_everything(cfg.seed, verbose=False)
    dm = (TextGlobalBatches(cfg, TEXT_SIZE[case]) if case in TEXT_SIZE
          else SplitGlobalBatches(cfg, nan_at=NAN_AT if case == "nonfinite" else None, image=case in IMAGE_CASES,
                                 tokens=case in TOKEN_CASES))
    with without_batchnorm(case in NO_BATCHNORM):
        module = GANModule(cfg, dm.info, game=GAMES[case]() if case in GAMES else None)
    if case == "nonfinite_grad":
        poison_d_gradients(module)
    stepped_name = module.game.players[module.player_names[-1]].nets[0]  # D, or the last player's first net
    init = {k: v.detach().clone() for k, v in module.net(stepped_name).state_dict().items()}
    logger = MemoryLogger()
    trainer = L.Trainer(accelerator="cpu", devices=world, num_nodes=1, max_epochs=-1, max_steps=-1,
                        logger=[logger], callbacks=[TrainLogger(cfg)], enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        deterministic=True, **(kwargs or trainer_kwargs(cfg)))
    trainer.fit(module, datamodule=dm)

    def state(m):
        return {k: v.detach().float().cpu().clone() for k, v in m.state_dict().items()}

    out = {name: state(module.net(name)) for name in module.net_names}
    out.update({"D_init": init, "stepped": stepped_name, "skipped": dict(module.num_skipped),
                "iteration": module.iteration,
                "metrics": logger.rows, "nets": list(module.net_names)})
    if module.G_ema_module is not None:
        out["G_ema"] = state(module.G_ema_module)
    prec = trainer.strategy.precision_plugin
    if getattr(prec, "scalers", None):
        out["scales"] = {p: s.get_scale() for p, s in prec.scalers.items()}
    return out


# ----------------------------------------------------------------- collectives (2 ranks)
def check_collectives(rank: int) -> dict:
    """Results of the cross-rank helpers, checked by the test on both ranks."""
    from ganscale.distributed.collectives import all_agree, average_gradients_, differentiable_mean

    a = torch.nn.Parameter(torch.zeros(3))
    b = torch.nn.Parameter(torch.zeros(2))
    c = torch.nn.Parameter(torch.zeros(1))
    a.grad = torch.full((3,), float(rank + 1))  # 1 on rank 0, 2 on rank 1 -> 1.5
    b.grad = torch.ones(2) * 4 if rank == 1 else None  # only rank 1 -> (0 + 4) / 2 = 2
    c.grad = None  # nowhere -> stays None
    average_gradients_([a, b, c], bucket_cap_mb=1e-6)  # tiny buckets: one tensor per bucket
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    y = differentiable_mean(x * (rank + 1))  # mean over ranks of x*(r+1) = 1.5 x
    (y * torch.tensor([1.0, 10.0])).sum().backward()
    return {"a": a.grad, "b": b.grad, "c_is_none": c.grad is None, "y": y.detach(), "x_grad": x.grad,
            "agree_true": all_agree(True), "agree_one_false": all_agree(rank == 0)}


def main(out_dir: str, strategies: list[str]) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    os.makedirs(out_dir, exist_ok=True)
    torch.save(check_collectives(rank), os.path.join(out_dir, f"collectives-rank{rank}.pt"))
    for strategy in strategies:
        for case in CASES:
            try:
                res = run_case(case, strategy, 2, B)
            except Exception:  # reported by the test that reads this case
                res = {"error": traceback.format_exc()}
            torch.save(res, os.path.join(out_dir, f"{case}-{strategy}-rank{rank}.pt"))
    # precision: bf16 (autocast under DDP, DeepSpeed's bf16 engines under ZeRO-2)
    for strategy in [s for s in ("ddp", "zero2") if s in strategies]:
        try:
            res = run_case("r1", strategy, 2, B, extra=["trainer.precision=bf16-mixed"])
        except Exception:
            res = {"error": traceback.format_exc()}
        torch.save(res, os.path.join(out_dir, f"bf16-{strategy}-rank{rank}.pt"))
    # BatchNorm: per-rank batch statistics differ; strategy.sync_buffers keeps the replicas equal
    bn = ["model.mlp.G.norm=batch", "model.mlp.D.norm=batch"]
    for name, strategy, extra in (("bn", "ddp", bn), ("bn", "zero2", bn),
                                  ("bn_nosync", "ddp", [*bn, "strategy.sync_buffers=false"])):
        if strategy in strategies:
            try:
                res = run_case("plain", strategy, 2, B, extra=extra)
            except Exception:
                res = {"error": traceback.format_exc()}
            torch.save(res, os.path.join(out_dir, f"{name}-{strategy}-rank{rank}.pt"))
    if "ddp" in strategies:
        # per-player loss scaling: fp16 autocast + one GradScaler per player (CPU autocast has
        # fp16; the config refuses 16-mixed on CPU for users, so the plugin is passed directly).
        # 2**24 overflows fp16 gradients at first: a player backs off on its own scaler.
        from ganscale.distributed.ddp import PlayerDDPStrategy
        from ganscale.distributed.precision import PlayerMixedPrecision

        cfg = make_cfg("plain", "ddp", 2, B)
        kwargs = {"strategy": PlayerDDPStrategy(cfg.strategy),
                  "plugins": [PlayerMixedPrecision("16-mixed", "cpu", initial_scale_power=24)]}
        try:
            res = run_case("plain", "ddp", 2, B, kwargs=kwargs)
        except Exception:
            res = {"error": traceback.format_exc()}
        torch.save(res, os.path.join(out_dir, f"fp16-ddp-rank{rank}.pt"))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:] or ["ddp", "zero1", "zero2"])
