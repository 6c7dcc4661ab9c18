"""Per-rank bytes of weights, gradients and optimizer state: DDP vs DeepSpeed ZeRO-1/2/3, BigGAN-128.

    OMP_NUM_THREADS=1 torchrun --standalone --nproc_per_node=2 benchmarks/dist_memory.py   # docs/distributed.md

Both players of BigGAN at 128 px (ganscale.nets arch=biggan, the paper's widths: G 70.4M, D 88.0M
parameters), Adam for each, 2 ranks (gloo on CPU, or one GPU each). Every strategy gets fresh
copies of G and D, runs two optimizer steps per player and then counts the bytes of every tensor
it holds (storages counted once), sorted into weights, gradients, fp32 master weights and optimizer
state, beside DeepSpeed's published model-state formulas for Adam in mixed precision (ZeRO paper,
K = 12 bytes of fp32 master + momentum + variance per parameter, N ranks):

    DDP       (2 + 2 + K) P          = 16 P
    ZeRO-1    2P + 2P + K P / N
    ZeRO-2    2P + (2 + K) P / N
    ZeRO-3    (2 + 2 + K) P / N

ganscale's DDP keeps fp32 weights and gradients under autocast (bf16-mixed): 4P + 4P + 8P = 16 P.
The DeepSpeed engines run in bf16 (their mixed-precision mode). On CPU a bf16 BigGAN forward is
emulated and takes minutes, so the backward here is that of a surrogate loss sum(w * c) over every
weight: it drives the same gradient hooks, reductions and partitioning as a real backward, and
model states do not depend on the loss. ZeRO-3 gathers its partitioned weights for it with
deepspeed.zero.GatheredParameters (as a forward would, module by module).
"""

from __future__ import annotations

import copy
import gc
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("DS_ACCELERATOR", "cpu")

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

GiB = 2**30


def tensors(obj, path="", seen=None, out=None, depth=0):
    """(path, tensor) for every tensor reachable from obj through attributes, dicts and lists; a
    tensor reached by several paths is listed under each (account() keeps the most specific)."""
    seen = set() if seen is None else seen
    out = [] if out is None else out
    if depth > 8:
        return out
    if isinstance(obj, torch.Tensor):
        out.append((path, obj))
        if id(obj) not in seen:
            seen.add(id(obj))
            if obj.grad is not None:
                tensors(obj.grad, path + ".grad", seen, out, depth + 1)
            if hasattr(obj, "ds_tensor"):  # ZeRO-3 keeps a parameter's partition here
                tensors(obj.ds_tensor, f"{path}.ds_tensor", seen, out, depth + 1)
        return out
    if id(obj) in seen:
        return out
    seen.add(id(obj))
    if isinstance(obj, dict):
        for k, v in obj.items():
            tensors(v, f"{path}[{k if isinstance(k, (str, int)) else type(k).__name__}]", seen, out, depth + 1)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            tensors(v, f"{path}[{i}]", seen, out, depth + 1)
    elif hasattr(obj, "__dict__") and not isinstance(obj, type) and "torch.distributed" not in type(obj).__module__:
        for k, v in vars(obj).items():
            tensors(v, f"{path}.{k}", seen, out, depth + 1)
    return out


def category(path: str) -> str:
    p = path.lower()
    if ".state[" in p or "exp_avg" in p or "momentum" in p:
        return "optimizer state"
    if "fp32" in p and "grad" not in p:
        return "fp32 master"
    if "grad" in p or "ipg" in p or "bucket" in p or "reduce" in p:
        return "gradients"
    return "weights"


def account(roots: dict) -> dict:
    """Bytes per category, each storage counted once (first category that reaches it wins)."""
    found = []
    for name, root in roots.items():
        found += tensors(root, name)
    order = {"optimizer state": 0, "fp32 master": 1, "gradients": 2, "weights": 3}
    found.sort(key=lambda pt: order[category(pt[0])])
    seen, total = set(), {k: 0 for k in order}
    for path, t in found:
        if t.device.type == "meta":
            continue
        st = t.untyped_storage()
        key = (st.data_ptr(), t.device)
        if key in seen or st.nbytes() == 0:
            continue
        seen.add(key)
        total[category(path)] += st.nbytes()
    return total


def surrogate_loss(params, coeffs):
    return sum((p.float() * c).sum() for p, c in zip(params, coeffs))


def coefficients(params):
    g = torch.Generator().manual_seed(0)
    return [torch.randn(p.shape, generator=g) for p in params]


def run_ddp(G0, D0) -> dict:
    from ganscale.distributed.collectives import average_gradients_

    roots = {}
    for name, net0 in (("G", G0), ("D", D0)):
        net = copy.deepcopy(net0)
        params = list(net.parameters())
        opt = torch.optim.Adam(params, lr=1e-4)
        coeffs = coefficients(params)
        for _ in range(2):
            opt.zero_grad()
            surrogate_loss(params, coeffs).backward()
            average_gradients_(params)  # ganscale DDP: one bucketed all-reduce after backward
            opt.step()
        surrogate_loss(params, coeffs).backward()  # gradients live until the next step
        average_gradients_(params)
        roots[name] = (net, opt)
        del coeffs
    return account({"module": [r[0] for r in roots.values()], "opt": [r[1] for r in roots.values()]})


def run_deepspeed(G0, D0, stage: int) -> dict:
    from ganscale.distributed.config import StrategyConfig
    from ganscale.distributed.deepspeed import deepspeed_config, import_deepspeed, scalar_params_as_vectors

    deepspeed = import_deepspeed("cpu" if not torch.cuda.is_available() else "gpu")
    deepspeed.init_distributed(dist_backend=dist.get_backend(), auto_mpi_discovery=False)
    engines = []
    for net0 in (G0, D0):
        net = copy.deepcopy(net0)
        if stage == 3:  # ZeRO-3's partitioning cannot take 0-dim half weights either: same bytes as [1]
            for m in net.modules():
                for k, p in list(m.named_parameters(recurse=False)):
                    if p.dim() == 0:
                        setattr(m, k, torch.nn.Parameter(p.detach().reshape(1)))
        n = sum(p.numel() for p in net.parameters())
        cfg = StrategyConfig(name="deepspeed", zero_stage=min(stage, 2))
        config = deepspeed_config(cfg, "bf16-mixed", micro_batch=1, num_params=n)
        config["zero_optimization"]["stage"] = stage  # 3 only here: ganscale refuses it for GAN training
        with scalar_params_as_vectors(net):
            engine, _, _, _ = deepspeed.initialize(model=net, optimizer=torch.optim.Adam(net.parameters(), lr=1e-4),
                                                   config=config, dist_init_required=False)
        params = list(net.parameters())
        shapes = [p.ds_shape if hasattr(p, "ds_shape") else p.shape for p in params]
        g = torch.Generator().manual_seed(0)
        coeffs = [torch.randn(s, generator=g) for s in shapes]
        for step in range(3):
            if stage == 3:
                with deepspeed.zero.GatheredParameters(params):
                    engine.backward(surrogate_loss(params, coeffs))
            else:
                engine.backward(surrogate_loss(params, coeffs))
            if step < 2:
                engine.step()
        del coeffs
        engines.append(engine)
    out = account({"engine": engines})
    for e in engines:
        e.destroy() if hasattr(e, "destroy") else None
    return out


def formulas(P: float, N: int) -> dict:
    K = 12
    return {"DDP": (2 + 2 + K) * P, "ZeRO-1": 2 * P + 2 * P + K * P / N, "ZeRO-2": 2 * P + (2 + K) * P / N,
            "ZeRO-3": (2 + 2 + K) * P / N, "issue (2P + 2P + 12P/N)": 4 * P + 12 * P / N}


def main() -> None:
    import faulthandler
    faulthandler.dump_traceback_later(float(os.environ.get("DUMP_AFTER", "1e9")), exit=True)
    dist.init_process_group("gloo")
    rank, N = dist.get_rank(), dist.get_world_size()
    from ganscale.config import load_config
    from ganscale.data.base import DataInfo
    from ganscale.nets import build_nets

    t0 = time.time()
    cfg = load_config([], ["model.arch=biggan", "model.z_dim=120", *sys.argv[1:]])  # overrides: a smaller model
    torch.manual_seed(0)
    G0, D0 = build_nets(cfg.model, DataInfo("image", (3, 128, 128), 1000))
    P = sum(p.numel() for p in G0.parameters()) + sum(p.numel() for p in D0.parameters())
    rows = {}
    for name, fn in (("DDP", lambda: run_ddp(G0, D0)), ("ZeRO-1", lambda: run_deepspeed(G0, D0, 1)),
                     ("ZeRO-2", lambda: run_deepspeed(G0, D0, 2)), ("ZeRO-3", lambda: run_deepspeed(G0, D0, 3))):
        try:
            rows[name] = fn()
        except Exception as e:  # reported in the table
            import traceback
            traceback.print_exc()
            rows[name] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}
        gc.collect()
        dist.barrier()
    gathered = [None] * N
    dist.all_gather_object(gathered, rows)
    if rank == 0:
        f = formulas(P, N)
        print(f"BigGAN-128 G + D: P = {P / 1e6:.1f}M parameters, N = {N} ranks; GiB per rank "
              f"(rank 0 / rank 1 where they differ)\n")
        print("| strategy | weights | fp32 master | gradients | optimizer state | total | formula (Adam, mixed) |")
        print("|---|---|---|---|---|---|---|")
        for name in rows:
            if "error" in rows[name]:
                print(f"| {name} | {rows[name]['error']} | | | | | {f[name] / GiB:.2f} |")
                continue

            def cell(key):
                vals = [g[name][key] / GiB for g in gathered]
                return " / ".join(f"{v:.2f}" for v in vals) if max(vals) - min(vals) > 0.005 else f"{vals[0]:.2f}"
            tot = [sum(g[name].values()) / GiB for g in gathered]
            print(f"| {name} | {cell('weights')} | {cell('fp32 master')} | {cell('gradients')} "
                  f"| {cell('optimizer state')} | {max(tot):.2f} | {f[name] / GiB:.2f} |")
        print(f"\nissue's ZeRO-2 estimate 2P + 2P + 12P/N = {f['issue (2P + 2P + 12P/N)'] / GiB:.2f} GiB; "
              f"{time.time() - t0:.0f} s")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
