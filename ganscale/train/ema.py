"""G_ema: an exponential moving average of a network, updated with one foreach kernel per dtype.

    ganscale train gan.ema.decay=0.999 gan.ema.start_iter=1000     # docs/games.md, train/config.py EMAConfig

The average lives in a `torch.optim.swa_utils.AveragedModel` (its `.module` samples; checkpoints key
it `G_ema.module.*` and `G_ema.n_averaged`), but `AveragedModel.update_parameters` re-lists the
parameters and buffers, compares `n_averaged` on the host and regroups the tensors at every call.
`EMA.update` does the same arithmetic over tensor lists built once: `torch._foreach_lerp_(ema, net,
1 - decay)` on the floating-point parameters and buffers (what `get_ema_multi_avg_fn` runs), the
same blend for integer buffers (BatchNorm's counter), and a copy on the first update and before
`start_iter`. Half-precision weights (DeepSpeed bf16/fp16 engines) are cast to the average's fp32.

Spectral norm's power-iteration vectors (`_u`, `_v` of torch's parametrization) are not averaged.
An average of unit vectors is no unit vector, nor the singular pair of the averaged weight, so
sigma = u^T W v came out too small, the averaged net's weights too large, and the error compounded
through the layers: a BigGAN G_ema scored FID 612 against its G's 286 (docs/fashion/NOTES.md).
Instead the average keeps its own vectors and, after each update, runs the parametrization's power
iterations on its own weight, as the trained net does at every forward in training mode (BigGAN-
PyTorch's G_ema runs one per forward, in eval mode too).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import _SpectralNorm
from torch.optim.swa_utils import AveragedModel

from ganscale.regularizers import spectral_norms


class EMA:
    """Updates `avg` (an AveragedModel of `source`'s structure) towards `source`."""

    def __init__(self, avg: AveragedModel, source: nn.Module, decay: float):
        self.avg, self.source, self.decay = avg, source, decay
        self._groups: Optional[list[tuple[list[Tensor], list[Tensor], bool]]] = None
        self._integers: list[tuple[Tensor, Tensor]] = []
        self._spectral: list[tuple[_SpectralNorm, Tensor]] = []
        self._vectors: list[tuple[Tensor, Tensor]] = []
        self._started: Optional[bool] = None

    def reset(self) -> None:
        """Forget the cached tensor lists and the host copy of `n_averaged` (after the networks or
        the average were moved or reloaded: a new fit, a rollback)."""
        self._groups, self._started = None, None

    def _build(self) -> None:
        # the tensors themselves, not detached views: a later `.data` swap (a device move, a
        # DeepSpeed cast) stays visible; the updates run under no_grad
        ema = [*self.avg.module.parameters(), *self.avg.module.buffers()]
        src = [*self.source.parameters(), *self.source.buffers()]
        if len(ema) != len(src):
            raise ValueError("the EMA copy and its network have different parameters and buffers")
        self._spectral = spectral_norms(self.avg.module)
        vectors = {id(t) for sn, _ in self._spectral for t in (sn._u, sn._v)}
        groups: dict = {}
        self._integers, self._vectors = [], []
        for e, s in zip(ema, src):
            if id(e) in vectors:  # copied on a copy, else refreshed by power iteration (module docstring)
                self._vectors.append((e, s))
                continue
            if not e.is_floating_point():
                self._integers.append((e, s))
                continue
            ema_l, src_l, cast = groups.setdefault((e.device, e.dtype), ([], [], [False]))
            ema_l.append(e)
            src_l.append(s)
            cast[0] |= s.dtype != e.dtype or s.device != e.device
        self._groups = [(e, s, c[0]) for e, s, c in groups.values()]

    @torch.no_grad()
    def update(self, copy: bool = False) -> None:
        """One update: average (or copy, when `copy` or before the first update) `source` into `avg`."""
        if self._groups is None:
            self._build()
        if self._started is None:
            self._started = bool(self.avg.n_averaged > 0)  # one host read per fit, not per iteration
        copy = copy or not self._started
        for ema_l, src_l, cast in self._groups:
            src = [s.to(device=e.device, dtype=e.dtype) for e, s in zip(ema_l, src_l)] if cast else src_l
            if copy:
                torch._foreach_copy_(ema_l, src)
            else:
                torch._foreach_lerp_(ema_l, src, 1 - self.decay)
        for e, s in self._integers:
            # get_ema_multi_avg_fn's rule for non-float tensors (foreach_lerp takes floats only)
            e.copy_(s if copy else e * self.decay + s * (1 - self.decay))
        if copy:
            for e, s in self._vectors:
                e.copy_(s)
            self.avg.n_averaged.zero_()
        else:
            for sn, weight in self._spectral:  # warm-started from the last update's vectors
                sn._power_method(sn._reshape_weight_to_matrix(weight), sn.n_power_iterations)
        self.avg.n_averaged += 1
        self._started = True
