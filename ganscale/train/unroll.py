"""Unrolled GAN (Metz et al. 2016): G's loss against a differentiable k-step look-ahead of D.

    ganscale train configs/toy/ring.yaml unroll.steps=5                       # second order
    ganscale train configs/toy/ring.yaml unroll.steps=5 unroll.second_order=false

In the G phase, `DLookahead.run` simulates k further updates of D, starting from D's current
parameters, buffers and optimizer state, with exactly D's optimizer rule and hyperparameters
(Adam / AdamW: moments, step count, bias correction, eps, coupled or decoupled weight decay; SGD:
weight decay, momentum, dampening, Nesterov). It runs functionally (torch.func.functional_call
over copies of D's parameters and buffers), so D itself, its BatchNorm running statistics, its
spectral-norm power-iteration vectors and its optimizer state are never touched: D's real
update stays the ordinary one.

Second order (the default): the surrogate D gradients are taken with create_graph=True, so G's
gradient flows back through all k updates, including through the fake samples the look-ahead
saw. First order: no gradient through the updates; G sees the k-step D as a constant.

The step loss (what one look-ahead update minimises) is supplied by the caller; GANModule passes
the very D loss its real D phase uses (ganscale.games.gan.GANGame.d_main_loss).

Distributed training: `grad_sync` is applied to the surrogate D gradients of every look-ahead
step. It defaults to the identity (one process). Under data parallelism the real D averages its
gradients across ranks before stepping, so the look-ahead must do the same to simulate the real
distributed D: pass a *differentiable* cross-rank mean (for example
`torch.distributed.nn.functional.all_reduce(g) / world_size` on each gradient). It must keep the
autograd graph (second order differentiates through it) and be called by every rank the same
number of times. The GAN game takes it from the strategy hook `unroll_grad_sync`
(ganscale.distributed.hooks; the identity in one process).
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor, nn
from torch.func import functional_call

from ganscale.errors import UserError
from ganscale.train.config import UnrollConfig  # noqa: F401  (lives torch-free; re-exported here)

GradSync = Callable[[list[Tensor]], list[Tensor]]
"""grads (aligned with DLookahead.names) -> the gradients the look-ahead update uses."""

StepLoss = Callable[[int, "FunctionalD", bool], Tensor]
"""(step j, D as a callable, keep_graph) -> the D loss of look-ahead step j. When keep_graph is
False (first order) the caller may build its fake samples without a graph to G."""


def identity_grad_sync(grads: list[Tensor]) -> list[Tensor]:
    """The default `grad_sync`: one process, nothing to average."""
    return grads


def _safe_sqrt(x: Tensor) -> Tensor:
    """sqrt with the same forward values but gradient 0 (not inf, then NaN) at exactly 0: Adam's
    second moment is 0 for entries whose gradient has always been 0 (e.g. dead ReLU units)."""
    pos = x > 0
    return torch.where(pos, torch.where(pos, x, torch.ones_like(x)).sqrt(), torch.zeros_like(x))


# ---------------------------------------------------------------- optimizer rules
# Each rule mirrors torch.optim's single-tensor implementation op for op (out of place, so the
# graph is kept): one look-ahead step from the same state gives bit-identical parameters on CPU.


def _adam_init(p: Tensor, state: dict, group: dict) -> dict:
    if group.get("amsgrad", False):
        raise UserError("unroll: Adam with amsgrad is not supported by the look-ahead; "
                        "set amsgrad off or unroll.steps=0")
    if not state:
        return {"step": 0.0, "exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)}
    return {
        "step": float(state["step"]),  # host-device sync when step lives on the device (capturable)
        "exp_avg": state["exp_avg"].detach(),
        "exp_avg_sq": state["exp_avg_sq"].detach(),
    }


def _adam_step(p: Tensor, grad: Tensor, st: dict, group: dict) -> tuple[Tensor, dict]:
    lr = float(group["lr"])
    beta1, beta2 = (float(b) for b in group["betas"])
    wd, eps = float(group["weight_decay"]), float(group["eps"])
    if group.get("maximize", False):
        grad = -grad
    step = st["step"] + 1
    if wd != 0:
        if group.get("decoupled_weight_decay", False):
            p = p.mul(1 - lr * wd)
        else:
            grad = grad.add(p, alpha=wd)
    exp_avg = torch.lerp(st["exp_avg"], grad, 1 - beta1)
    exp_avg_sq = torch.addcmul(st["exp_avg_sq"].mul(beta2), grad, grad, value=1 - beta2)
    bias_correction1 = 1 - beta1**step
    bias_correction2 = 1 - beta2**step
    step_size = lr / bias_correction1
    denom = (_safe_sqrt(exp_avg_sq) / bias_correction2**0.5).add(eps)
    p = torch.addcdiv(p, exp_avg, denom, value=-step_size)
    return p, {"step": step, "exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}


def _sgd_init(p: Tensor, state: dict, group: dict) -> dict:
    buf = state.get("momentum_buffer")
    return {"momentum_buffer": None if buf is None else buf.detach()}


def _sgd_step(p: Tensor, grad: Tensor, st: dict, group: dict) -> tuple[Tensor, dict]:
    lr, wd = float(group["lr"]), float(group["weight_decay"])
    momentum, dampening = float(group["momentum"]), float(group.get("dampening", 0.0))
    if group.get("maximize", False):
        grad = -grad
    if wd != 0:
        grad = grad.add(p, alpha=wd)
    buf = st["momentum_buffer"]
    if momentum != 0:
        # torch starts the buffer as a copy of the first gradient (no dampening on that step)
        buf = grad if buf is None else buf.mul(momentum).add(grad, alpha=1 - dampening)
        grad = grad.add(buf, alpha=momentum) if group.get("nesterov", False) else buf
    return p.add(grad, alpha=-lr), {"momentum_buffer": buf}


_RULES = {
    torch.optim.Adam: (_adam_init, _adam_step),  # AdamW is a subclass (decoupled_weight_decay=True)
    torch.optim.SGD: (_sgd_init, _sgd_step),
}


def optimizer_rule(optimizer: torch.optim.Optimizer):
    """(init, step) of the look-ahead for this optimizer; UserError if it has none."""
    opt = getattr(optimizer, "optimizer", optimizer)  # unwrap Lightning / Fabric wrappers
    for cls, rule in _RULES.items():
        if isinstance(opt, cls):
            return opt, rule
    raise UserError(f"unroll: D's optimizer {type(opt).__name__} has no look-ahead rule; "
                    f"use optim.D.name=adam, adamw or sgd, or unroll.steps=0")


# ---------------------------------------------------------------- the look-ahead
class FunctionalD:
    """D evaluated with given parameters and buffers: same call signature as D."""

    def __init__(self, D: nn.Module, params: dict[str, Tensor], buffers: dict[str, Tensor]):
        self.D, self.params, self.buffers = D, params, buffers

    def __call__(self, x: Tensor, y: Optional[Tensor] = None, **kwargs):
        return functional_call(self.D, (self.params, self.buffers), (x, y), kwargs, tie_weights=True, strict=False)


class DLookahead:
    """k differentiable updates of D from its current state, never touching D or its optimizer.

    `names` are D's parameter names in the order of the gradient lists given to `grad_sync`.
    """

    def __init__(self, D: nn.Module, optimizer: torch.optim.Optimizer, steps: int, second_order: bool = True,
                 grad_sync: Optional[GradSync] = None):
        self.D, self.steps, self.second_order = D, int(steps), bool(second_order)
        self.optimizer, (self._init, self._step) = optimizer_rule(optimizer)
        self.grad_sync: GradSync = grad_sync or identity_grad_sync
        group_of = {id(p): g for g in self.optimizer.param_groups for p in g["params"]}
        # Parameters D's optimizer updates move in the look-ahead; any other stays constant.
        self.names = [n for n, p in D.named_parameters() if id(p) in group_of]
        self._groups = {n: group_of[id(p)] for n, p in D.named_parameters() if id(p) in group_of}

    def run(self, step_loss: StepLoss) -> FunctionalD:
        """D after k look-ahead updates, as a callable; update j minimises step_loss(j, D_j, ...)."""
        named = dict(self.D.named_parameters())
        params = {n: p.detach() for n, p in named.items()}
        # Buffers are copied: BatchNorm running stats and spectral-norm vectors update in place.
        buffers = {n: b.detach().clone() for n, b in self.D.named_buffers()}
        if self.steps == 0:
            return FunctionalD(self.D, params, buffers)
        states = {n: self._init(params[n], self.optimizer.state.get(named[n], {}), self._groups[n])
                  for n in self.names}
        for n in self.names:
            params[n] = params[n].requires_grad_(True)
        for j in range(self.steps):
            d_j = FunctionalD(self.D, params, buffers)
            loss = step_loss(j, d_j, self.second_order)
            grads = torch.autograd.grad(loss, [params[n] for n in self.names], create_graph=self.second_order,
                                        allow_unused=True)
            grads = list(self.grad_sync(list(grads)))
            new_params = dict(params)
            for n, g in zip(self.names, grads):
                if g is None:  # torch's optimizers skip parameters without a gradient
                    continue
                p = params[n]
                if not self.second_order:
                    p, g = p.detach(), g.detach()
                new_p, states[n] = self._step(p, g, states[n], self._groups[n])
                if not self.second_order:
                    new_p = new_p.detach().requires_grad_(j + 1 < self.steps)
                new_params[n] = new_p
            params = new_params
        return FunctionalD(self.D, params, buffers)
