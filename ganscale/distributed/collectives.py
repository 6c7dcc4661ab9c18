"""Cross-rank helpers. Every function is a collective: all ranks call it, in the same order.

All of them are no-ops (or identities) when torch.distributed is not initialised or the world has
one process, so the same code runs in a single process.
"""

from __future__ import annotations

from typing import Iterable, Optional, Sequence

import torch
import torch.distributed as dist
from torch import Tensor

from ganscale.utils.ranks import world_size


def _buckets(tensors: Sequence[Tensor], cap_bytes: int) -> Iterable[list[Tensor]]:
    """Consecutive runs of same-dtype, same-device tensors of at most cap_bytes (at least one each)."""
    bucket: list[Tensor] = []
    size = 0
    for t in tensors:
        nbytes = t.numel() * t.element_size()
        if bucket and (size + nbytes > cap_bytes or t.dtype != bucket[0].dtype or t.device != bucket[0].device):
            yield bucket
            bucket, size = [], 0
        bucket.append(t)
        size += nbytes
    if bucket:
        yield bucket


def all_reduce_mean_(tensors: Sequence[Tensor], bucket_cap_mb: float = 25.0, group=None) -> None:
    """Average `tensors` in place across ranks: each bucket is flattened, all-reduced (SUM) once and
    divided by the world size. One collective per bucket instead of one per tensor."""
    n = world_size()
    if n == 1 or not tensors:
        return
    cap = max(1, int(bucket_cap_mb * 2**20))
    for bucket in _buckets(tensors, cap):
        flat = torch.cat([t.reshape(-1) for t in bucket])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=group)
        flat.div_(n)
        offset = 0
        for t in bucket:
            t.copy_(flat[offset:offset + t.numel()].view_as(t))
            offset += t.numel()


def average_gradients_(params: Sequence[Tensor], bucket_cap_mb: float = 25.0, group=None) -> None:
    """Average `.grad` of `params` across ranks, as DDP does, after the full backward of a phase.

    A parameter whose gradient is None on some ranks counts as zero there (DDP's
    find_unused_parameters semantics), and keeps None only if it is None on every rank, so the
    optimizer sees the same set of gradients everywhere. The presence flags travel in the same
    collective as the last bucket (one extra float per parameter)."""
    if world_size() == 1 or not params:
        return
    present = torch.tensor([p.grad is not None for p in params], dtype=torch.float32, device=params[0].device)
    grads = []
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        grads.append(p.grad)
    all_reduce_mean_([*grads, present], bucket_cap_mb, group)
    for p, seen in zip(params, present.tolist()):  # host sync: one per player step
        if seen == 0:
            p.grad = None


def differentiable_mean(t: Tensor, group=None) -> Tensor:
    """The cross-rank mean of `t`, differentiable: the backward of an all-reduce SUM is an
    all-reduce SUM of the incoming gradients, so a graph built on the result (the unrolled
    look-ahead of D, a gradient penalty's input gradient) differentiates through every rank's
    contribution. Identity in a single process."""
    n = world_size()
    if n == 1:
        return t
    from torch.distributed.nn.functional import all_reduce

    return all_reduce(t, op=dist.ReduceOp.SUM, group=group) / n


def differentiable_mean_all(tensors: Sequence[Optional[Tensor]], group=None) -> list[Optional[Tensor]]:
    """`differentiable_mean` of many tensors in one flat collective (None entries stay None)."""
    if world_size() == 1:
        return list(tensors)
    real = [t for t in tensors if t is not None]
    if not real:
        return list(tensors)
    flat = differentiable_mean(torch.cat([t.reshape(-1) for t in real]), group)
    out: list[Optional[Tensor]] = []
    offset = 0
    for t in tensors:
        if t is None:
            out.append(None)
            continue
        out.append(flat[offset:offset + t.numel()].view_as(t))
        offset += t.numel()
    return out


def differentiable_gather_rows(t: Tensor, group=None) -> Tensor:
    """Every rank's rows of `t` (the same shape on each), in rank order, differentiably: each rank
    places its rows in a zero tensor of the global shape and `differentiable_mean` sums them. A loss
    that couples a batch's rows (DAMSM's in-batch mismatches) computed on the result by every rank
    gives, after the players' gradient average, the gradient of the one-process loss. Identity in a
    single process."""
    n = world_size()
    if n == 1:
        return t
    rank, b = dist.get_rank(group), t.shape[0]
    placed = t.new_zeros((b * n, *t.shape[1:]))
    placed = placed.index_copy(0, torch.arange(rank * b, (rank + 1) * b, device=t.device), t)
    return differentiable_mean(placed, group) * n


def all_gather_rows(t: Tensor) -> Tensor:
    """Every rank's `t` (the same shape on each) concatenated along dim 0 in rank order; not
    differentiable (conditions and labels, never activations)."""
    n = world_size()
    if n == 1:
        return t
    out = [torch.empty_like(t) for _ in range(n)]
    dist.all_gather(out, t.contiguous())
    return torch.cat(out)


def all_agree(ok: bool, device: Optional[torch.device] = None) -> bool:
    """True only if `ok` is True on every rank (one all-reduce MIN of a flag)."""
    if world_size() == 1:
        return bool(ok)
    flag = torch.tensor([1.0 if ok else 0.0], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item())  # host sync


def all_agree_tensor(ok: Tensor) -> Tensor:
    """`ok` (a 0-d bool tensor) AND-ed over ranks, left on the device: one all-reduce MIN and no
    host sync, so the finite guard's flag can feed a masked optimizer step."""
    if world_size() == 1:
        return ok
    flag = ok.to(torch.float32).reshape(1)
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return flag[0] > 0


def broadcast_module_(module: torch.nn.Module, src: int = 0) -> None:
    """Copy rank `src`'s parameters and buffers to every rank (replicas start identical)."""
    if world_size() == 1:
        return
    for t in [*module.parameters(), *module.buffers()]:
        dist.broadcast(t.data, src)


def average_float_buffers_(module: torch.nn.Module, bucket_cap_mb: float = 25.0) -> None:
    """Average floating-point buffers (e.g. BatchNorm running stats) across ranks in place."""
    bufs = [b for b in module.buffers() if b.is_floating_point()]
    all_reduce_mean_(bufs, bucket_cap_mb)


def close_process_group(wait_for_all: bool = True) -> None:
    """End of a run that created the process group: every rank waits for the others (rank 0 still
    writes the final evaluation, plots and checkpoint), then the group is destroyed in order. A rank
    that left the interpreter with its group alive while rank 0 was still working could abort in
    the group's teardown ("terminate called without an active exception", seen under Slurm); its
    exit then made srun kill rank 0 and fail the job."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    if wait_for_all and dist.get_world_size() > 1:
        dist.barrier()
    dist.destroy_process_group()
