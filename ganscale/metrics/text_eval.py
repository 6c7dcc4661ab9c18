"""The evaluation of text-to-image runs (game.condition=text), during training and in `ganscale eval`.

    ganscale train configs/text2img/digits_dfgan.yaml eval.text.data=data/digits-test \
        eval.text.judge=judge.safetensors trainer.eval_every=500
    ganscale eval runs/digits_dfgan eval.text.data=data/digits-test eval.text.judge=judge.safetensors \
        eval.metrics=[fid,kid] eval.extractor=classifier eval.classifier_path=classifiers/mnist.pt

G (its EMA) is sampled for captions of real images: `eval.text.num_captions` images of
`eval.text.data` (the run's training shards when empty), one caption each, drawn with eval.seed
(with a judge: each image's canonical caption, the issue's protocol). Metrics, logged as
`metrics/<name>` and written to <run>/metrics.jsonl like every evaluation:

- r_precision: the run's DAMSM pair (game.text.encoder) ranks each image's true caption among
  itself and eval.text.candidates - 1 captions of other images (identical strings are never
  mismatches); the top-1 rate (AttnGAN). Runs on precomputed embeddings have no image encoder and
  skip it.
- caption_exact, caption_held_out, caption_control (captioned digits, eval.text.judge): the
  digit-and-colour judge reads exactly what the caption says; the same for captions holding the
  held-out (colour, digit) pairs; and the images judged against the caption of another row (the
  shuffled-caption control, whose chance is caption_control_chance).
- eval.metrics (FID, KID, IS, precision/recall over eval.extractor, no download): the data's real
  images against fakes conditioned on captions of `data` (max(num_captions, eval.num_samples)
  images are read; sample i takes caption i mod L).

Every rank generates its share of the rows (batch k of eval.batch_size on rank k mod W) and the
outputs are gathered in row order, so W ranks score what one process scores. The sample grid of an
evaluation prints each caption under its image.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from torch import Tensor, nn

from ganscale.conditions import TextCondition, cond_index
from ganscale.data.synth.captioned_digits import recorded_holdout
from ganscale.errors import UserError
from ganscale.metrics.evaluation import ImageEvaluation, SampleFn

GRID = 16
"""Captions of an evaluation's sample grid."""
SEED_STRIDE = 1_000_003
"""Batch k of a pass draws its latents from seed eval.seed * SEED_STRIDE + k + pass offset."""
HELD_OUT_OFFSET = 500_000
"""Seed offset of the held-out pass (beside the pass over the data's captions)."""


@dataclass
class EvalCaptions:
    """One caption per image of the evaluation data."""

    texts: list[str]
    emb: Optional[Tensor] = None
    """[N, E] the captions' precomputed embeddings (`ganscale data embed`), when the shards have them."""
    holdout: str = ""
    """The held-out pairs the shards' manifest records ("red 7,blue 2"), if any."""


def load_captions(spec: str, num: int, seed: int, canonical: bool = False) -> EvalCaptions:
    """The first `num` captioned images of the shards `spec`, one caption each: drawn with `seed`,
    or with `canonical` the first caption that is a canonical captioned-digits one."""
    from ganscale.data.shards.decode import sample_captions
    from ganscale.data.shards.spec import resolve_shards
    from ganscale.data.shards.stream import DataStats, read_shard
    from ganscale.metrics.digits_judge import parse_caption

    def is_canonical(c: str) -> bool:
        try:
            parse_caption(c)
            return True
        except ValueError:
            return False

    shards = resolve_shards(spec)
    rng = np.random.default_rng(seed)
    texts, embs = [], []
    for url in shards.urls:
        for s in read_shard(url, DataStats(0, 0)):
            caps = sample_captions(s)
            if canonical:
                caps = [c for c in caps if is_canonical(c)][:1]
            if not caps:
                continue
            j = int(rng.integers(len(caps))) if not canonical else 0
            texts.append(caps[j])
            if "emb.npy" in s:
                try:
                    e = np.load(io.BytesIO(s["emb.npy"]), allow_pickle=False)
                except (ValueError, OSError):
                    e = None
                embs.append(None if e is None else e[min(j, len(e) - 1)] if e.ndim == 2 else e)
            if len(texts) == num:
                break
        if len(texts) == num:
            break
    if not texts:
        what = "canonical captioned-digits captions (`ganscale data synth captioned-digits`)" if canonical \
            else "captions"
        raise UserError(f"eval.text.data={spec}: the shards hold no {what}; point eval.text.data at captioned "
                        "shards (a test split)")
    emb = None
    if embs and len(embs) == len(texts) and all(e is not None for e in embs):
        emb = torch.from_numpy(np.stack(embs).astype(np.float32))
    return EvalCaptions(texts, emb, ",".join(recorded_holdout(shards.manifest)))


class TextFeatures(nn.Module):
    """uint8 images -> {"features": the DAMSM image encoder's global vectors, "logits": the judge's
    quadrant logits [N, 4 * 61]} (whichever of the two is there)."""

    def __init__(self, image_encoder: Optional[nn.Module], judge: Optional[nn.Module]):
        super().__init__()
        self.image, self.judge = image_encoder, judge

    @torch.no_grad()
    def forward(self, x: Tensor) -> dict[str, Tensor]:
        from ganscale.metrics.digits_judge import to_float

        f = to_float(x)  # the uint8 images the gather hands over, back in [-1, 1]
        out = {}
        if self.image is not None:
            out["features"] = self.image(f)[1]
        if self.judge is not None:
            out["logits"] = self.judge(f).flatten(1)
        return out


class TextEvaluation:
    """R-precision, the captioned-digits judge and the image metrics for captions of real images."""

    def __init__(self, cfg, datamodule, run_dir: Optional[str], device: torch.device):
        self.cfg, self.ecfg, self.tcfg = cfg, cfg.eval, cfg.eval.text
        self.data, self.device = datamodule, device
        self.image = ImageEvaluation(cfg, datamodule, run_dir, device)
        self.pair = self.judge = None
        self.captions: Optional[EvalCaptions] = None
        self.cond: Optional[TextCondition] = None
        self.held_out: list[str] = []
        self.held_cond: Optional[TextCondition] = None

    # ----------------------------------------------------------------- set-up
    def prepare(self) -> None:
        """Load the encoder pair, the judge and the captions (a missing file fails before training)."""
        if self.cond is not None:
            return
        from ganscale.metrics.digits_judge import held_out_captions, load_judge

        self.image.prepare()
        t = self.tcfg
        if self.cfg.game.text.encoder:
            from ganscale.text.pair import load_encoder

            self.pair = load_encoder(self.cfg.game.text.encoder, device=self.device)
        if t.judge:
            shape = tuple(self.data.info.shape)
            if shape != (3, 64, 64):
                raise UserError(f"eval.text.judge reads 64x64 RGB captioned digits; this run makes {shape} images "
                                "(leave eval.text.judge empty for other data)")
            self.judge = load_judge(t.judge, device=self.device)
        spec = t.data or self.cfg.data.shards.urls
        # the text metrics score the first num_captions rows; FID's fakes cycle over every row loaded
        num = max(t.num_captions, self.ecfg.num_samples if self.ecfg.metrics else 0, 2)
        self.captions = load_captions(spec, num, self.ecfg.seed, canonical=self.judge is not None)
        self.cond = self.encode(self.captions.texts, self.captions.emb, spec)
        if self.judge is not None and t.num_captions:
            from ganscale.data.synth.captioned_digits import parse_holdout

            holdout = t.holdout or self._train_holdout() or self.captions.holdout
            if holdout:
                self.held_out = held_out_captions(parse_holdout(holdout), t.num_captions, self.ecfg.seed)
                self.held_cond = self.encode(self.held_out, None, "eval.text.holdout")

    def _train_holdout(self) -> str:
        """The held-out pairs the training shards' manifest records (captioned digits), or ""."""
        try:
            return load_captions(self.cfg.data.shards.urls, 1, 0).holdout
        except UserError:
            return ""

    def encode(self, texts: list[str], emb: Optional[Tensor], where: str) -> TextCondition:
        """Captions -> the TextCondition G reads (CPU): the run's text encoder, or precomputed embeddings."""
        if self.pair is not None:
            vocab, max_len = self.pair.vocab, self.pair.cfg.max_len
            enc = [vocab.encode(c, max_len) for c in texts]  # unknown words read as <unk>, as in training
            ids = torch.tensor([e[0] for e in enc], device=self.device)
            lengths = torch.tensor([e[1] for e in enc], device=self.device)
            with torch.no_grad():
                return self.pair.text(ids, lengths).to("cpu")
        if emb is None:
            raise UserError(f"{where}: this run conditions on precomputed caption embeddings and these captions "
                            "have none; point eval.text.data at shards made by `ganscale data embed`")
        return TextCondition(sentence=emb)

    # ----------------------------------------------------------------- evaluation
    def evaluate(self, sample_fn: SampleFn) -> dict:
        self.prepare()
        out: dict = {}
        if self.ecfg.metrics:
            n = len(self.cond)
            out.update(self.image.evaluator().evaluate(
                sample_fn, self.device,
                conditions=lambda start, m: cond_index(self.cond, torch.arange(start, start + m) % n)))
        if self.tcfg.num_captions and (self.pair is not None or self.judge is not None):
            out.update(self.text_metrics(sample_fn))
        return out

    def _outputs(self, sample_fn: SampleFn, cond: TextCondition, offset: int) -> dict[str, Tensor]:
        """The features/judge logits of G's images for every row of `cond`, gathered over ranks."""
        from ganscale.metrics.evaluator import gather_outputs
        from ganscale.utils.ranks import rank, world_size

        b, n = self.ecfg.batch_size, len(cond)
        r, w = rank(), world_size()

        def batches():
            for k in range(r, math.ceil(n / b), w):
                start = k * b
                rows = slice(start, min(start + b, n))
                x = sample_fn(rows.stop - start, seed=self.ecfg.seed * SEED_STRIDE + offset + k,
                              y=cond_index(cond, rows))
                yield start, x, None

        image = self.pair.image if self.pair is not None else None
        features = TextFeatures(image, self.judge).to(self.device)
        return gather_outputs(batches(), features, self.device, self.data.info.shape, with_labels=False)

    def text_metrics(self, sample_fn: SampleFn) -> dict:
        from ganscale.metrics.digits_judge import NUM_CLASSES, parse_caption
        from ganscale.text.damsm import candidates_used, r_precision

        texts = self.captions.texts[: self.tcfg.num_captions]
        cond = cond_index(self.cond, slice(0, len(texts)))
        got = self._outputs(sample_fn, cond, 0)
        out: dict = {}
        if "features" in got:
            ids, groups = {}, []
            for c in texts:  # the same string is never a mismatch of itself
                groups.append(ids.setdefault(c, len(ids)))
            groups = torch.tensor(groups)
            if len(ids) < 2:
                raise UserError(f"R-precision needs at least 2 different captions; eval.text.data has {len(ids)} "
                                "(raise eval.text.num_captions or use other data)")
            g = torch.Generator().manual_seed(self.ecfg.seed)
            out["r_precision"] = r_precision(got["features"], cond.sentence, groups, self.tcfg.candidates,
                                             generator=g)
            out["r_precision_candidates"] = candidates_used(groups, self.tcfg.candidates)
        if "logits" in got:
            pred = got["logits"].view(len(texts), 4, NUM_CLASSES).argmax(-1)
            targets = torch.tensor([parse_caption(c) for c in texts])
            shuffled = torch.roll(targets, 1, dims=0)
            out["caption_exact"] = float((pred == targets).all(1).float().mean())
            out["caption_control"] = float((pred == shuffled).all(1).float().mean())
            out["caption_control_chance"] = float((targets == shuffled).all(1).float().mean())
            if self.held_cond is not None:
                held = self._outputs(sample_fn, self.held_cond, HELD_OUT_OFFSET)["logits"]
                held_pred = held.view(len(self.held_out), 4, NUM_CLASSES).argmax(-1)
                held_targets = torch.tensor([parse_caption(c) for c in self.held_out])
                out["caption_held_out"] = float((held_pred == held_targets).all(1).float().mean())
        out["num_captions"] = len(texts)
        return out

    def plot(self, sample_fn: SampleFn, path: str, title: Optional[str] = None) -> Optional[str]:
        """G's images for the first captions, each caption printed under its image."""
        from ganscale.metrics.plots import captioned_grid, to_uint8_images

        self.prepare()
        k = min(GRID, len(self.cond))
        x = sample_fn(k, seed=self.ecfg.seed * SEED_STRIDE, y=cond_index(self.cond, slice(0, k)))
        return captioned_grid(to_uint8_images(x), self.captions.texts[:k], path)
