"""What the text-to-image games share (dfgan.py, stackgan.py, stackganpp.py): the frozen text
encoder as a network of the game, the D chunks of each iteration, the conditioning-augmentation
noise drawn through the engine, and sampling for captions.

    ganscale train configs/text2img/digits_dfgan.yaml      # game.name=dfgan game.condition=text

Networks: G and D (the `model.arch` family, ganscale.nets.text2img) and T, the text encoder of
`game.text.encoder` (no player owns it: it stays frozen and in eval mode). Players G and D.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Optional

import torch
from torch import Tensor, nn

from ganscale.conditions import TextCondition
from ganscale.conditions.text_kind import ENCODER
from ganscale.errors import UserError
from ganscale.games.base import Game, Phase, Player
from ganscale.losses_text import ma_gp, matching_aware_d
from ganscale.losses import get_loss
from ganscale.nets import build_nets
from ganscale.regularizers import apply_configured_spectral_norm

CA_SUB = 20
"""Sub offset of the conditioning-augmentation noise draws (beside the noise, penalty, label,
pairing and caption draws)."""


class FrozenText(nn.Module):
    """The game's text encoder, frozen: `rows(batch, rows, j)` encodes caption j[i] of each image
    i of `rows`; `encode(captions)` encodes strings (sampling). A trained DAMSM text encoder
    (token ids) or, without a file, precomputed embeddings (`caption_emb`)."""

    def __init__(self, path: str, emb_dim: int, device="cpu", with_image: bool = False):
        super().__init__()
        from ganscale.text.encoders import PrecomputedText
        from ganscale.text.pair import load_encoder

        if path:
            pair = load_encoder(path, device=device)
            self.encoder, self.vocab, self.max_len = pair.text, pair.vocab, pair.cfg.max_len
            if with_image:  # the DAMSM term of G's loss (game.text.damsm_weight) reads G's images with it
                self.image, self.damsm_cfg = pair.image, pair.cfg
        else:
            self.encoder, self.vocab, self.max_len = PrecomputedText(emb_dim), None, 0
        self.requires_grad_(False)
        self.train(False)

    def train(self, mode: bool = True) -> "FrozenText":
        return super().train(False)  # always eval: no dropout in the LSTM's embeddings

    @property
    def dim(self) -> int:
        return self.encoder.dim

    @torch.no_grad()
    def rows(self, batch: dict, rows: slice, j: Tensor) -> tuple[TextCondition, list[str]]:
        n = rows.stop - rows.start
        ar = torch.arange(n, device=j.device)
        texts = [""] * n
        if batch.get("captions") is not None:
            texts = [caps[k] if k < len(caps) else "" for caps, k in zip(batch["captions"][rows], j.tolist())]
        if self.vocab is None:
            if "caption_emb" not in batch:
                raise UserError("game.text.encoder is empty and the batch has no caption_emb: give the text "
                                "encoder file (ganscale text train) or embed the captions (ganscale data embed)")
            emb = batch["caption_emb"][rows]
            return self.encoder(emb[ar, j] if emb.ndim == 3 else emb), texts
        for k in ("caption_ids", "caption_lengths"):
            if k not in batch:
                raise UserError(f"the batch has no {k}: the shards need a vocabulary (vocab.json beside "
                                "manifest.json, written by `ganscale data pack`)")
        ids, lengths = batch["caption_ids"][rows][ar, j], batch["caption_lengths"][rows][ar, j]
        if not any(texts):
            texts = [self.vocab.decode(t.tolist()) for t in ids]
        return self.encoder(ids, lengths), texts

    def matching_loss(self, images: Tensor, c: TextCondition, rows=lambda t: t) -> tuple[Tensor, dict]:
        """AttnGAN's DAMSM loss of images against their captions c, with the encoder file's gammas;
        gradients reach the images, not the frozen encoders. `rows` turns this rank's features (and
        c) into the global batch's, so the mismatches are the global batch's. Rows with the same
        caption are not counted as mismatches of each other."""
        from ganscale.text.damsm import matching_loss, negatives_mask

        k = self.damsm_cfg
        regions, glob = (rows(t) for t in self.image(images))
        # every row its own group; identical sentence vectors (the same caption) are not mismatches
        excluded = negatives_mask(torch.arange(len(c), device=c.sentence.device), c.sentence)
        return matching_loss(regions, glob, c.words, c.sentence, c.mask, excluded, k.gamma1, k.gamma2, k.gamma3,
                             k.word_weight)

    @torch.no_grad()
    def encode(self, captions: list[str], device=None) -> TextCondition:
        """Captions as strings -> TextCondition; words outside the vocabulary are one UserError naming them."""
        if self.vocab is None:
            raise UserError("this run conditions on precomputed caption embeddings, not on words: sample it "
                            "with embeddings (there is no text encoder to read --text)")
        unknown = list(dict.fromkeys(w for c in captions for w in self.vocab.unknown(c)))
        if unknown:
            raise UserError(f"words not in the text encoder's vocabulary: {', '.join(unknown)}; use words of the "
                            f"training captions (the vocabulary has {len(self.vocab) - 2} words)")
        enc = [self.vocab.encode(c, self.max_len) for c in captions]
        device = device or next(self.encoder.parameters()).device
        ids = torch.tensor([e[0] for e in enc], device=device)
        return self.encoder(ids, torch.tensor([e[1] for e in enc], device=device))


def ca_noise(m, phase: str, sub: int):
    """A noise source for the nets' conditioning augmentation: each call draws standard normals for
    the global batch from the (iteration, phase, sub + CA_SUB) generator and returns this rank's rows."""
    g = m._phase_generator(phase, sub + CA_SUB)
    return lambda shape: m.draw(shape[0], lambda n, gg: torch.randn((n, *shape[1:]), generator=gg,
                                                                    device=m.device), generator=g)


class TextGame(Game):
    """G against a matching-aware D on captions; subclasses write `d_main` and `g_main`."""

    players = {"G": Player(nets=("G",), optim="G"), "D": Player(nets=("D",), optim="D")}
    ema_of = "G"
    sample_net = "G"

    def build(self, cfg, info):
        if cfg.game.condition != "text":
            raise UserError(f"game.name={cfg.game.name} conditions on captions: set game.condition=text "
                            f"(it is {cfg.game.condition!r})")
        problems = self.check(cfg, info)
        if problems:
            raise UserError("; ".join(problems))
        self.cfg, self.t = cfg, cfg.game.text
        self.loss_fn = get_loss(cfg.loss.name)
        G, D = build_nets(cfg.model, info)
        apply_configured_spectral_norm(cfg.reg.spectral_norm, {"G": G, "D": D})  # as in the image game
        text_dim = getattr(cfg.model, cfg.model.arch).text_dim
        T = FrozenText(self.t.encoder, text_dim, with_image=self.t.damsm_weight > 0)
        if T.dim != text_dim:
            raise UserError(f"the text encoder {self.t.encoder} gives {T.dim}-d sentences, model.{cfg.model.arch}."
                            f"text_dim is {text_dim}: set model.{cfg.model.arch}.text_dim={T.dim}")
        return {ENCODER: T, "G": G, "D": D}  # D last: the net the last player steps (tests read it so)

    def phases(self, cfg):
        return [Phase("D_main", "D", self.d_main, repeat=cfg.gan.n_disc), Phase("G_main", "G", self.g_main)]

    def check(self, cfg, info) -> list[str]:
        if cfg.reg.gp_weight > 0 or cfg.reg.r1_gamma > 0 or cfg.unroll.steps > 0:
            return [f"game.name={self.name} has no WGAN-GP, R1 or unrolled D steps (DF-GAN's penalty is "
                    "game.text.ma_gp_k): set reg.gp_weight=0, reg.r1_gamma=0 and unroll.steps=0"]
        return []

    def uses_gp(self) -> bool:
        """DF-GAN's MA-GP in D's loss."""
        return False

    def d_main(self, m, sub: int):
        real, c = m.reals[sub]
        with torch.no_grad():
            fake = self.fake(m, c, "D_main", sub)[0]
        return d_terms(self, m, real, c, fake, sub, gp=self.uses_gp())

    @abstractmethod
    def g_main(self, m, sub: int):
        """G's loss for chunk `sub` (each family's own: DF-GAN's hinge, StackGAN's stages + CA-KL)."""

    def damsm_term(self, m, fake: Tensor, c: TextCondition) -> Tensor:
        """game.text.damsm_weight x the DAMSM loss of G's images (AttnGAN's G loss), logged; 0 when off."""
        if self.t.damsm_weight <= 0:
            return fake.new_zeros(())
        # the in-batch mismatches couple the rows: every rank scores the global batch (N ranks = one process)
        loss, parts = m.net(ENCODER).matching_loss(fake, m.global_rows(c), m.global_rows_differentiable)
        m.stats.update({"loss/G/damsm": loss.detach(), **{f"loss/G/damsm_{k}": v for k, v in parts.items()}})
        return self.t.damsm_weight * loss

    def start_iteration(self, m, batch: dict) -> None:
        """m.reals: (real images, their captions' TextCondition) chunks, one per D step."""
        x = batch["x"]
        b = x.shape[0] // self.cfg.gan.n_disc
        rows = [slice(i * b, (i + 1) * b) for i in range(self.cfg.gan.n_disc)]
        m.reals = [(x[r], m.condition.real(m, batch, r)) for r in rows]

    def fake(self, m, c: TextCondition, phase: str, sub: int) -> tuple[Tensor, dict]:
        """G's images and extras for conditions c, with z and the CA noise from the seeded draws."""
        b = len(c)
        return m.G(m.noise(b, phase, sub), c, generator=ca_noise(m, phase, sub))


def nearest_mismatch(k: int):
    """A `pick` for m.mismatched: row i gets one of the k captions nearest its own (Euclidean distance
    of the sentence vectors), drawn uniformly with the seeded generator; identical captions (the
    same sentence vector up to rounding) are never picked while another exists."""

    def pick(pool: TextCondition, g: torch.Generator) -> Tensor:
        s = pool.sentence.float()
        n = len(s)
        # the direct differences: cdist's matrix-product path (batches over 25 rows) leaves the
        # diagonal at ~1e-3 instead of 0 and would hand a row its own caption
        d = torch.cdist(s, s, compute_mode="donot_use_mm_for_euclid_dist")
        # identical up to rounding: a caption encoded on another rank, in another batch, may differ
        # from its twin in the last bits, and must not become its "nearest" mismatch there only
        scale = 1.0 + s.norm(dim=1)
        eye = torch.eye(n, dtype=torch.bool, device=s.device)
        excluded = (d <= 1e-4 * torch.maximum(scale[:, None], scale[None, :])) | eye
        # a batch of identical captions has no other: fall back to any other row
        excluded &= ~excluded.all(1, keepdim=True) | eye
        d = d.masked_fill(excluded, float("inf"))
        kk = min(k, n - 1)
        order = d.topk(kk, dim=1, largest=False).indices                    # [n, kk], nearest first
        avail = (~excluded).sum(1).clamp(min=1, max=kk)                     # rows with fewer candidates
        choice = (torch.rand(n, generator=g, device=g.device) * avail).long().clamp(max=kk - 1)
        return order.gather(1, choice[:, None].to(order.device))[:, 0]
    return pick


def d_terms(game, m, real, c, fake, sub: int, gp: bool = False) -> Tensor:
    """The matching-aware D loss of one (real, fake) pair of batches (StackGAN, StackGAN++ per scale), with
    DF-GAN's MA-GP when `gp`; logs the parts."""
    t = game.t
    wrong = m.mismatched(c, "D_main", sub, pick=nearest_mismatch(t.mismatch_k) if t.mismatch == "nearest" else None)
    if gp:
        real = real.detach().requires_grad_(True)
        s = c.sentence.detach().requires_grad_(True)
        c = TextCondition(s, c.words, c.mask)
    r = m.D(real, c)
    parts = matching_aware_d(game.loss_fn, r, m.D(real, wrong), m.D(fake, c), t.wrong_weight, t.fake_weight)
    loss = parts["total"]
    if gp:
        penalty = ma_gp(r, real, c.sentence, t.ma_gp_k, t.ma_gp_p)
        loss = loss + penalty
        m.stats["reg/D/ma_gp"] = penalty.detach()
    m.stats.update({f"loss/D/{k}": v.detach() for k, v in parts.items() if k != "total"})
    m.stats.update({"loss/D": loss.detach(), "D/real": r.detach().mean()})
    return loss


def sample_text(module, cond: TextCondition, seed: int = 0, batch: int = 256) -> Tensor:
    """Images [N, C, H, W] in [-1, 1] (CPU) from the run's generator (its EMA) for conditions `cond`;
    z and the CA noise come from `seed`, so the same seed gives the same images."""
    return module.sample(len(cond), seed=seed, y=cond, batch=batch)


def sample_captions(module, captions: list[str], seed: int = 0) -> Tensor:
    """Images for caption strings (one each), through the run's frozen text encoder."""
    T = module.net(ENCODER)
    return sample_text(module, T.encode(captions, device=module.device), seed)


def text_encoder_of(module) -> Optional[FrozenText]:
    return getattr(module, ENCODER, None) if module.condition.name == "text" else None
