"""Regularizers of D: WGAN-GP gradient penalty, R1, and spectral norm via torch's parametrization
(`apply_spectral_norm`; `spectral_norms` finds them in a net, e.g. for G_ema's power iteration).

Both penalties need the gradient of D's output with respect to its input, kept in the graph
(create_graph=True) so D's backward differentiates through it (double backward). torch.compile's
graphs do not support double backward, so under `trainer.compile` D runs eagerly inside them.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import _SpectralNorm, spectral_norm

DFn = Callable[[Tensor], Tensor]


def _force_eager(fn):
    """Run `fn` with every torch.compile'd callee eager (torch >= 2.6; earlier versions: unchanged,
    and torch's own error names double backward if trainer.compile meets a penalty)."""
    set_stance = getattr(torch.compiler, "set_stance", None)
    return set_stance("force_eager")(fn) if set_stance is not None else fn


@_force_eager  # a compiled D (trainer.compile) runs its eager forward here
def _input_grad(d_fn: DFn, x: Tensor) -> Tensor:
    # An x already in a graph (fakes inside an unrolled look-ahead) stays in it, so G's gradient
    # also flows through the penalty; otherwise x becomes a leaf of its own.
    if not x.requires_grad:
        x = x.detach().requires_grad_(True)
    out = d_fn(x)
    (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    return grad.flatten(1)


def gradient_penalty(
    d_fn: DFn, real: Tensor, fake: Tensor, center: float = 1.0, eps: Optional[Tensor] = None
) -> Tensor:
    """WGAN-GP (Gulrajani et al. 2017): E[(||grad_x D(x_hat)||_2 - center)^2],
    x_hat = eps * real + (1 - eps) * fake, eps ~ U[0, 1] per sample. The caller multiplies by lambda."""
    if eps is None:
        eps = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
    x_hat = eps * real + (1 - eps) * fake
    norms = _input_grad(d_fn, x_hat).norm(2, dim=1)
    return (norms - center).pow(2).mean()


def r1_penalty(d_fn: DFn, real: Tensor) -> Tensor:
    """R1 (Mescheder et al. 2018): E[||grad_x D(x)||_2^2] on reals. The loss term is gamma/2 times
    this; applied lazily every k iterations it is also multiplied by k (StyleGAN2) so its expected
    contribution per iteration is unchanged."""
    return _input_grad(d_fn, real).pow(2).sum(dim=1).mean()


def apply_spectral_norm(module: nn.Module, eps: float = 1e-12, exclude: tuple[nn.Module, ...] = ()) -> nn.Module:
    """Spectral norm (Miyato et al. 2018) on every Linear/Conv/Embedding weight not parametrized
    already, except the modules in `exclude` (e.g. BigGAN's shared class embedding)."""
    skip = {id(m) for m in exclude}
    for m in list(module.modules()):
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d, nn.Embedding)) and id(m) not in skip:
            if not (hasattr(m, "parametrizations") and "weight" in m.parametrizations):
                spectral_norm(m, eps=eps)
    return module


def apply_configured_spectral_norm(names, nets: dict[str, nn.Module]) -> None:
    """Spectral norm on each net of `nets` that `names` (reg.spectral_norm, e.g. [D]) lists."""
    for name, net in nets.items():
        if name in names:
            apply_spectral_norm(net)

def spectral_norms(net: nn.Module) -> list[tuple[_SpectralNorm, Tensor]]:
    """(parametrization, the weight it normalises) for every spectral norm in `net` on a matrix or
    conv weight (a 1-D weight is normalised directly, without vectors)."""
    out = []
    for mod in net.modules():
        plist = getattr(getattr(mod, "parametrizations", None), "weight", None)
        if plist is None:
            continue
        for p in plist:
            if isinstance(p, _SpectralNorm) and plist.original.ndim > 1:
                out.append((p, plist.original))
    return out
