"""RNG states of every rank, in a form `torch.load(weights_only=True)` accepts.

ganscale's training noise and toy data come from generators seeded by (seed, iteration, ...),
so they do not depend on these states; what does is everything else that draws from the global
generators: dropout, data augmentation, DataLoader worker seeds, user code.
"""

from __future__ import annotations

import random

import numpy as np
import torch
import torch.distributed as dist

from ganscale.utils.ranks import process_group


def capture() -> dict:
    """This process's Python, NumPy, torch (CPU) and CUDA generator states."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore(state: dict) -> None:
    random.setstate(_as_tuple(state["python"]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(x):
    return tuple(_as_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x


def gather(state: dict, world_size: int) -> list[dict]:
    """Every rank's state, in rank order (a collective: all ranks must call it)."""
    if world_size == 1 or process_group() is None:
        return [state]
    out: list = [None] * world_size
    dist.all_gather_object(out, state)
    return out
