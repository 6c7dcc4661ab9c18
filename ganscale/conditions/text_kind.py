"""The `text` condition kind: captions through the game's frozen text encoder (text-to-image games).

    ganscale train configs/text2img/digits_dfgan.yaml          # game.condition=text

Real rows: each image's caption is drawn among all of its captions (`caption_ids` [N, C, T],
`caption_lengths` [N, C], `caption_counts` [N] of a shard batch, or `caption_emb` [N, C, E] for
precomputed embeddings) with uniforms drawn for the *global* batch from the engine's seeded
generator of (iteration, first phase, sub 16 + chunk); each rank takes its rows, so N ranks pick
the captions one process picks and a resumed run picks what an uninterrupted one picks. The
chosen captions go through the frozen encoder, the network `T` of the game (no player owns it),
into a `TextCondition`. Fakes are conditioned on the real rows' captions (the data's captions);
the matching-aware wrong pairs are `m.mismatched(c)`.
"""

from __future__ import annotations

import torch

from ganscale.conditions.kinds import ConditionKind
from ganscale.conditions.ops import cond_cat, cond_index
from ganscale.conditions.text import TextCondition
from ganscale.conditions.captions import caption_index, uniform_draws
from ganscale.errors import UserError

ENCODER = "T"
"""The name of the frozen text encoder among the game's networks."""
CAPTION_SUB = 16
"""Sub offset of the caption draws (the GAN's phases use subs 0..15 for noise, penalties, labels, pairs)."""
POOL = 64
"""Captions of the latest real batches kept for sampling during training (plots, evaluation)."""


class TextKind(ConditionKind):
    name = "text"

    def __init__(self) -> None:
        self.pool = None
        """Recent real conditions (TextCondition on CPU) and their captions, for sampling without --text."""
        self.pool_captions: list[str] = []

    def real(self, m, batch: dict, rows: slice):
        enc = m.net(ENCODER)
        counts = batch.get("caption_counts")
        if counts is None:
            raise UserError("game.condition=text needs captions in the batch (caption_counts with caption_ids or "
                            "caption_emb); pack image-caption data with `ganscale data pack` or `ganscale data "
                            "synth captioned-digits`, and keep data.shards.text=true")
        per = rows.stop - rows.start
        chunk = rows.start // per if per else 0
        u = m.draw(per, lambda n, g: uniform_draws(n, g, m.device), phase=m.phase_list[0].name,
                   sub=CAPTION_SUB + chunk)
        j = caption_index(u, counts[rows].to(m.device))
        c, captions = enc.rows(batch, rows, j)
        self._remember(c, captions)
        return c

    def fake(self, m, per_rank, real, phase=None, sub=0, generator=None):
        return real  # fakes are drawn for the data's captions

    def _remember(self, c, captions: list[str]) -> None:
        c = c.detach().to("cpu")
        self.pool = c if self.pool is None else cond_index(cond_cat([c, self.pool]), slice(0, POOL))
        self.pool_captions = (list(captions) + self.pool_captions)[:POOL]

    def sample(self, m, n: int, generator: torch.Generator, given=None):
        if isinstance(given, TextCondition):
            return given.to(m.device)
        # anything else (e.g. the class labels a data module's plot passes for labelled data) is not
        # a caption: sample for captions of the latest real batches
        if self.pool is None:
            raise UserError("sampling a text-to-image run needs captions: ganscale sample RUN --text \"...\" or "
                            "--captions FILE (`ganscale eval` samples for captions of eval.text.data)")
        idx = torch.randint(len(self.pool), (n,), generator=generator, device=generator.device).cpu()
        return cond_index(self.pool, idx).to(m.device)
