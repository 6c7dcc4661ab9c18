"""What G and D are conditioned on, carried through the batch as one type.

A condition batch is one of:

    None              unconditional
    Tensor [N]        class indices (long)
    Tensor [N, K]     latent codes or precomputed embeddings (float)
    TextCondition     a sentence vector [N, E], optional word features [N, T, E_w] and mask [N, T]

Every kind supports what the engine needs: `cond_len`, row selection (`cond_index`, for rank
slices, n_disc chunks and mismatched pairs), `cond_cat`, `cond_to` (device). Nets receive the
condition as their second argument: `G(z, c)`, `D(x, c)`.
"""

from ganscale.conditions.kinds import ConditionKind, resolve_condition
from ganscale.conditions.ops import cond_cat, cond_index, cond_len, cond_to
from ganscale.conditions.text import TextCondition
from ganscale.errors import UserError
from ganscale.registry import CONDITIONS

__all__ = ["CONDITIONS", "ConditionKind", "TextCondition", "build_condition", "cond_cat", "cond_index",
           "cond_len", "cond_to"]


def build_condition(cfg, info) -> ConditionKind:
    """The condition kind `game.condition` names (auto: class for labelled data, else none)."""
    name = resolve_condition(cfg, info)
    if name not in CONDITIONS:
        raise UserError(CONDITIONS.problem("game.condition", name))
    return CONDITIONS[name]()
