"""Training throughput of 1 vs 2 processes (CPU, gloo) for the toy MLP and a small conv GAN.

    python benchmarks/dist_throughput.py                          # the table in docs/distributed.md
    python benchmarks/dist_throughput.py --iters 100 --models toy --strategies ddp

For each model and strategy, `torchrun --nproc_per_node=N` runs this file as a worker: the real
GANModule and Lightning Trainer with ganscale's strategy (ganscale.distributed.trainer_kwargs), a
synthetic stream of reals (the toy ring; random images for the conv GAN, so no data loading cost
is measured) and the same *per-rank* batch, so 2 processes do twice the work per iteration. It
reports iterations/s, global samples/s (D and G steps), the scaling efficiency
(samples/s with N / (N x samples/s with 1)) and, for DDP, the share of the step spent in the
non-overlapped gradient all-reduce (`sync_player_grads`).
On a GPU machine pass --accelerator gpu (one process per GPU).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = {
    "toy": ["data.batch_size=256"],
    "conv": ["model.arch=dcgan", "model.z_dim=64", "model.dcgan.G_ch=32", "model.dcgan.D_ch=32",
             "data.batch_size=32"],
}
STRATEGIES = {"ddp": ["strategy.name=ddp"], "zero2": ["strategy.name=deepspeed", "strategy.zero_stage=2"]}


def worker(args) -> None:
    sys.path.insert(0, REPO)
    import lightning as L
    import torch
    import torch.distributed as dist
    from torch.utils.data import DataLoader, IterableDataset

    from ganscale.config import load_config
    from ganscale.config.default_job import default_job_path
    from ganscale.data.base import DataInfo, GANDataModule
    from ganscale.data.toy import mixture_means, sample_mixture
    from ganscale.distributed import trainer_kwargs
    from ganscale.train.module import GANModule
    from ganscale.utils.ranks import launched_world_size

    world = launched_world_size()
    strategy = ["strategy.name=single"] if world == 1 else STRATEGIES[args.strategy]
    # on top of the default job (R1, EMA, schedule as in `ganscale train`): the setting of the published figures
    cfg = load_config([default_job_path()], [*MODELS[args.model], *strategy, f"trainer.devices={world}",
                           f"trainer.accelerator={args.accelerator}", "trainer.progress_bar=false",
                           f"trainer.max_iters={args.iters + args.warmup}"])
    image = args.model != "toy"
    shape = (1, 32, 32) if image else (2,)

    class Stream(IterableDataset):
        def __iter__(self):
            b = cfg.data.batch_size * cfg.gan.n_disc
            means = mixture_means(cfg.data.toy)
            for i in itertools.count():
                g = torch.Generator().manual_seed(i)
                yield {"x": torch.rand(b, *shape, generator=g) * 2 - 1 if image
                       else sample_mixture(means, cfg.data.toy.std, b, g)}

    class Synthetic(GANDataModule):
        def __init__(self):
            super().__init__(cfg)
            self.info = DataInfo("image" if image else "points", shape, 0)

        def iteration_loader(self):
            return DataLoader(Stream(), batch_size=None)

    sync_time = [0.0]

    class Timer(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if pl_module.iteration == args.warmup:
                if dist.is_initialized():
                    dist.barrier()
                self.t0 = time.perf_counter()
                sync_time[0] = 0.0

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if pl_module.iteration >= args.warmup + args.iters:
                self.dt = time.perf_counter() - self.t0
                trainer.should_stop = True

    L.seed_everything(0, verbose=False)
    dm = Synthetic()
    module = GANModule(cfg, dm.info)
    timer = Timer()
    kwargs = trainer_kwargs(cfg)
    sync = getattr(kwargs["strategy"], "sync_player_grads", None)
    if sync is not None and args.strategy == "ddp":
        def timed_sync(name, params):
            t = time.perf_counter()
            sync(name, params)
            sync_time[0] += time.perf_counter() - t
        kwargs["strategy"].sync_player_grads = timed_sync
    trainer = L.Trainer(accelerator=args.accelerator, devices=world, max_epochs=-1, max_steps=-1, logger=False,
                        callbacks=[timer], enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, **kwargs)
    trainer.fit(module, datamodule=dm)
    if trainer.global_rank == 0:
        params = sum(p.numel() for p in module.G.parameters()) + sum(p.numel() for p in module.D.parameters())
        its = args.iters / timer.dt
        with open(args.out, "w") as f:
            json.dump({"model": args.model, "strategy": "single" if world == 1 else args.strategy, "world": world,
                       "per_rank_batch": cfg.data.batch_size, "params": params, "it_per_s": its,
                       "samples_per_s": its * cfg.data.batch_size * world * (cfg.gan.n_disc + 1),
                       "sync_share": sync_time[0] / timer.dt}, f)


def launch(model: str, strategy: str, nproc: int, args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "r.json")
        env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", __file__,
               "--worker", "--model", model, "--strategy", strategy, "--iters", str(args.iters),
               "--warmup", str(args.warmup), "--accelerator", args.accelerator, "--out", out]
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(r.stderr[-4000:])
        with open(out) as f:
            return json.load(f)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="toy,conv")
    p.add_argument("--strategies", default="ddp,zero2")
    p.add_argument("--iters", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--accelerator", default="cpu")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--model", default="toy", help=argparse.SUPPRESS)
    p.add_argument("--strategy", default="ddp", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)
    rows = []
    for model in args.models.split(","):
        one = launch(model, "ddp", 1, args)
        rows.append(one)
        for strategy in args.strategies.split(","):
            two = launch(model, strategy, 2, args)
            two["efficiency"] = two["samples_per_s"] / (2 * one["samples_per_s"])
            rows.append(two)
    print(f"| model | params | strategy | processes | per-rank batch | it/s | global samples/s | scaling "
          f"efficiency | all-reduce share of step |\n|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        eff = f"{r['efficiency']:.2f}" if "efficiency" in r else "-"
        share = f"{100 * r['sync_share']:.0f}%" if r["strategy"] == "ddp" and r["world"] > 1 else "-"
        print(f"| {r['model']} | {r['params'] / 1e6:.2f}M | {r['strategy']} | {r['world']} | {r['per_rank_batch']} "
              f"| {r['it_per_s']:.1f} | {r['samples_per_s']:.0f} | {eff} | {share} |")
    print(f"\n{args.iters} timed iterations after {args.warmup} warm-up; host load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at the end.")


if __name__ == "__main__":
    main()
