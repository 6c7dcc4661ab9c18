"""DAMSM matching losses and R-precision (AttnGAN, Xu et al. 2018).

For a batch of N images and their N captions, `negatives_mask(groups, ids)` marks the pairs that
must not count as mismatches: same class (or key), or the very same token sequence. Both losses
score every (image, caption) pair, scale by gamma3 and take cross-entropy in both directions
(which caption matches image i, which image matches caption i), so the batch is its own set of
mismatched pairs.

- sentence level: s(i, j) = cos(image global_i, sentence_j)
- word level: each word of caption j attends over the regions of image i,
      a = softmax over words of (e_w . v_r), then softmax over regions of gamma1 * a,
      c_w = sum_r a_wr v_r (the region context of word w),
      s(i, j) = log( sum_w exp(gamma2 * cos(e_w, c_w)) )          (real words only)

gamma1 = 4, gamma2 = 5, gamma3 = 10 are AttnGAN's settings (cfg.TRAIN.SMOOTH, CUB).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor


def negatives_mask(groups: Tensor, ids: Optional[Tensor] = None) -> Tensor:
    """[N, N] bool, True where pair (i, j), i != j, is NOT a mismatch: same group, or identical captions."""
    same = groups[:, None] == groups[None, :]
    if ids is not None:
        same |= (ids[:, None, :] == ids[None, :, :]).all(-1)
    return same & ~torch.eye(len(groups), dtype=torch.bool, device=groups.device)


def _both_ways(scores: Tensor, excluded: Optional[Tensor], gamma3: float) -> tuple[Tensor, Tensor]:
    """scores[i, j] = match of image i and caption j -> (loss over captions, loss over images)."""
    scores = gamma3 * scores
    if excluded is not None:
        scores = scores.masked_fill(excluded, float("-inf"))
    labels = torch.arange(len(scores), device=scores.device)
    return F.cross_entropy(scores, labels), F.cross_entropy(scores.t(), labels)


def sentence_scores(image_global: Tensor, sentence: Tensor) -> Tensor:
    """cos(image i, sentence j) for every pair: [N_img, N_cap]."""
    return F.normalize(image_global, dim=1) @ F.normalize(sentence, dim=1).t()


def sentence_loss(image_global: Tensor, sentence: Tensor, excluded: Optional[Tensor] = None,
                  gamma3: float = 10.0) -> tuple[Tensor, Tensor]:
    return _both_ways(sentence_scores(image_global, sentence), excluded, gamma3)


def word_scores(regions: Tensor, words: Tensor, mask: Tensor, gamma1: float = 4.0, gamma2: float = 5.0
                ) -> tuple[Tensor, Tensor]:
    """regions [N_i, E, R, R], words [N_c, T, E], mask [N_c, T] -> (scores [N_i, N_c], attention
    [N_i, N_c, T, R*R])."""
    v = regions.flatten(2)  # [Ni, E, L]
    dots = torch.einsum("cte,iel->ictl", words, v)  # e_w . v_r, [Ni, Nc, T, L]
    pad = ~mask[None, :, :, None]
    a = dots.masked_fill(pad, float("-inf")).softmax(dim=2)  # over the caption's words (AttnGAN Eq. 8)
    a = (gamma1 * a).softmax(dim=3)  # over regions
    context = torch.einsum("ictl,iel->icte", a, v)  # [Ni, Nc, T, E]
    # cos(e_w, c_w) with e_w . c_w = sum_r a_wr (e_w . v_r) read off `dots`: the same value as
    # F.cosine_similarity on the [Ni, Nc, T, E] tensors, at a quarter of the time (forward and
    # backward), which was most of an encoder step
    norms = (words.norm(dim=-1)[None] * context.norm(dim=-1)).clamp_min(1e-8)
    cos = ((a * dots).sum(-1) / norms).masked_fill(~mask[None], float("-inf"))  # [Ni, Nc, T]
    return torch.logsumexp(gamma2 * cos, dim=2), a


def word_loss(regions: Tensor, words: Tensor, mask: Tensor, excluded: Optional[Tensor] = None,
              gamma1: float = 4.0, gamma2: float = 5.0, gamma3: float = 10.0) -> tuple[Tensor, Tensor]:
    return _both_ways(word_scores(regions, words, mask, gamma1, gamma2)[0], excluded, gamma3)


def matching_loss(regions: Tensor, image_global: Tensor, words: Tensor, sentence: Tensor, mask: Tensor,
                  excluded: Optional[Tensor] = None, gamma1: float = 4.0, gamma2: float = 5.0,
                  gamma3: float = 10.0, word_weight: float = 1.0) -> tuple[Tensor, dict]:
    """The DAMSM loss: sentence level both ways + word_weight * word level both ways (AttnGAN's
    s_loss0 + s_loss1 + w_loss0 + w_loss1), and its two parts detached for logging."""
    s0, s1 = sentence_loss(image_global, sentence, excluded, gamma3)
    w0, w1 = word_loss(regions, words, mask, excluded, gamma1, gamma2, gamma3)
    return s0 + s1 + word_weight * (w0 + w1), {"sentence": (s0 + s1).detach(), "word": (w0 + w1).detach()}


def candidates_used(groups: Tensor, candidates: int = 100) -> int:
    """Captions R-precision can rank for the worst-off row: min(candidates, 1 + rows of other groups)."""
    same = (groups[:, None] == groups[None, :]).sum(1)
    return int(min(candidates, 1 + len(groups) - int(same.max())))


def r_precision(image_global: Tensor, sentence: Tensor, groups: Tensor, candidates: int = 100,
                generator: Optional[torch.Generator] = None) -> float:
    """Top-1 rate of the true caption among itself and `candidates - 1` mismatched captions
    (captions of other groups, drawn without replacement), ranked by cosine with the image.

    image_global [M, E] and sentence [M, E] are aligned (row i: image i and its caption);
    groups [M] says which rows are not mismatches of each other. AttnGAN's protocol uses 99
    mismatched captions (candidates=100); with fewer rows of other groups all of them are used."""
    img = F.normalize(image_global.float(), dim=1)
    sen = F.normalize(sentence.float(), dim=1)
    hits = 0
    for i in range(len(img)):
        others = torch.nonzero(groups != groups[i]).flatten()
        if len(others) == 0:
            raise ValueError("R-precision needs captions of more than one group")
        pick = others[torch.randperm(len(others), generator=generator)[: candidates - 1].to(others.device)]
        scores = sen[torch.cat([torch.tensor([i], device=others.device), pick])] @ img[i]
        hits += int(bool(scores[0] > scores[1:].max()))  # a tie is a miss
    return hits / len(img)
