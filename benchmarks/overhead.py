"""Framework overhead: ganscale against a hand-written PyTorch loop doing the same work.

    nice -n 10 python benchmarks/overhead.py                        # writes docs/overhead.md
    python benchmarks/overhead.py --jobs ring --repeats 2 --iters 200 --process-iters 0 --out /tmp/o.md

Jobs (the same nets, built by ganscale.nets.build_nets, and the same work per iteration):

- ring: the default job (`ganscale train`, configs/toy/ring.yaml): MLP G/D, batch 512, non-saturating loss,
  R1 every `reg.r1_interval` iterations, G_ema, the linearly decaying learning rate; the batches
  come from the toy stream on both sides. ganscale runs it as shipped: 10 iterations per Lightning
  step (`trainer.iters_per_step`), so --warmup and --warmup + --iters must be multiples of 10.
- dcgan: configs/mnist/dcgan.yaml (class-conditional DCGAN, batch 64), fed on both sides from the
  same pool of in-memory batches, so the shard pipeline (benchmarks/data_loader.py) stays out.

A is `ganscale.train.run.main(cfg)`, the code path of `ganscale train` (Trainer, callbacks, loggers,
progress bar, ops, finite guard), timed between two iterations well after the start and before the
final evaluation/checkpoint. B is the plain loop. A and B alternate in one process (A B A B ...),
so both see the same machine load; the per-iteration ratio is median(A) / median(B). A' is A with
the finite guard's check replaced by "always finite" (its cost, measured, not removed). The
whole-process ratio times `python -m ganscale train` against `python benchmarks/overhead.py --plain`
(imports and start-up included; ganscale also evaluates, plots and checkpoints once at the end).
A cProfile of A shows where ganscale's extra time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import REPO, Clock, image_pool, memory_datamodule, patched, timed_run  # noqa: E402

# ring: the default job, configs/toy/ring.yaml (what `ganscale train` runs without a config file;
# load_config([]) alone gives the components' neutral defaults, a different job)
JOBS = {"ring": [os.path.join(REPO, "configs", "toy", "ring.yaml")],
        "dcgan": [os.path.join(REPO, "configs", "mnist", "dcgan.yaml")]}


def job_config(job: str, iters: int, root: str, extra: tuple[str, ...] = ()):
    from ganscale.config import load_config

    ov = [f"trainer.max_iters={iters}", f"run.root={root}", "wandb.mode=disabled", *extra]
    if job == "dcgan":  # the shard URLs are not read: batches come from memory (see module docstring)
        # (and G_ema averages from the start: the same work as copying G, in short runs too)
        ov += ["data.shards.urls=unused", "eval.metrics=[]", "gan.ema.start_iter=0"]
    cfg = load_config(JOBS[job], ov)
    cfg.config_name = job
    return cfg


# ----------------------------------------------------------------- data both sides share
MNIST_SHAPE, MNIST_CLASSES = (1, 28, 28), 10


def plain_batches(cfg):
    """B's batches: the same stream (ring) or pool (dcgan) A reads."""
    from ganscale.data import build_datamodule

    if cfg.data.kind == "toy":
        stream = build_datamodule(cfg).stream()
        return lambda i: stream.batch_at(i)
    pool = image_pool(cfg, MNIST_SHAPE, MNIST_CLASSES)
    return lambda i: pool[i % len(pool)]


# ----------------------------------------------------------------- B: the plain loop
def plain_loop(cfg, iters: int, marks: tuple[int, int], sync) -> Clock:
    """Train like a hand-written script; return the Clock of iterations marks[0] to marks[1]."""
    import lightning as L
    import torch
    import torch.nn.functional as F

    from ganscale.data import build_datamodule
    from ganscale.nets import build_nets
    from ganscale.train.optim import lr_at

    device = torch.device("cuda" if cfg.trainer.accelerator in ("gpu", "cuda") else "cpu")
    L.seed_everything(cfg.seed, verbose=False)
    info = build_datamodule(cfg).info if cfg.data.kind == "toy" else None
    if info is None:
        from ganscale.data.base import DataInfo

        info = DataInfo("image", MNIST_SHAPE, MNIST_CLASSES)
    G, D = build_nets(cfg.model, info)
    G, D = G.to(device), D.to(device)
    G_ema = torch.optim.swa_utils.AveragedModel(G).requires_grad_(False)  # a deep copy, nothing else used
    # what AveragedModel(use_buffers=True) averages: parameters and floating-point buffers
    ema_p = [t for t in [*G_ema.module.parameters(), *G_ema.module.buffers()] if t.is_floating_point()]
    g_p = [t for t in [*G.parameters(), *G.buffers()] if t.is_floating_point()]
    og, od = cfg.optim.G, cfg.optim.D
    opt_G = torch.optim.Adam(G.parameters(), lr=og.lr, betas=tuple(og.betas), eps=og.eps)
    opt_D = torch.optim.Adam(D.parameters(), lr=od.lr, betas=tuple(od.betas), eps=od.eps)
    batch_at = plain_batches(cfg)
    ncls, n_disc = info.num_classes, cfg.gan.n_disc
    gamma, interval, decay = cfg.reg.r1_gamma, cfg.reg.r1_interval, cfg.gan.ema.decay
    clock = Clock(marks, sync)
    for it in range(iters):
        clock.tick(it)
        for g in opt_G.param_groups:
            g["lr"] = lr_at(og, it, cfg.trainer.max_iters)
        for g in opt_D.param_groups:
            g["lr"] = lr_at(od, it, cfg.trainer.max_iters)
        batch = {k: v.to(device, non_blocking=True) for k, v in batch_at(it).items()}
        xs = batch["x"].chunk(n_disc)
        ys = batch["y"].chunk(n_disc) if "y" in batch else [None] * n_disc
        b = xs[0].shape[0]
        D.requires_grad_(True)
        G.requires_grad_(False)
        for real, y in zip(xs, ys):
            yf = torch.randint(ncls, (b,), device=device) if ncls else None
            with torch.no_grad():
                fake = G(G.sample_z(b, device=device), yf)
            loss = F.softplus(-D(real, y)).mean() + F.softplus(D(fake, yf)).mean()
            opt_D.zero_grad(set_to_none=True)
            loss.backward()
            opt_D.step()
        if gamma > 0 and it % interval == 0:
            real = xs[-1].detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(D(real, ys[-1]).sum(), real, create_graph=True)
            loss = 0.5 * gamma * interval * grad.flatten(1).pow(2).sum(1).mean()
            opt_D.zero_grad(set_to_none=True)
            loss.backward()
            opt_D.step()
        D.requires_grad_(False)
        G.requires_grad_(True)
        yf = torch.randint(ncls, (b,), device=device) if ncls else None
        loss = F.softplus(-D(G(G.sample_z(b, device=device), yf), yf)).mean()
        opt_G.zero_grad(set_to_none=True)
        loss.backward()
        opt_G.step()
        G.requires_grad_(False)
        with torch.no_grad():  # G_ema: lerp towards G (a copy before ema.start_iter)
            torch._foreach_lerp_(ema_p, g_p, 1.0 if it < cfg.gan.ema.start_iter else 1 - decay)
    return clock


# ----------------------------------------------------------------- A: ganscale
def ganscale_run(cfg, marks: tuple[int, int], sync, guard: bool = True) -> Clock:
    """`ganscale train` in this process (train.run.main); the Clock of iterations marks[0] to marks[1]."""
    from ganscale.distributed import players

    dm = None if cfg.data.kind == "toy" else memory_datamodule(cfg, MNIST_SHAPE, MNIST_CLASSES)
    return timed_run(cfg, marks, sync, datamodule=dm, patches=[_no_guard(players, enabled=not guard)])[0]


@contextmanager
def _no_guard(players, enabled: bool):
    """A': every player step as backward + step only (the engine's own path for them: direct or
    through Lightning's wrappers): the finite check (foreach norm, flag, host read) skipped, to
    measure what it costs."""
    if not enabled:
        yield
        return
    # the engine's single-process hook imports players.player_step at each call: patch it there
    def player_step(module, name, loss):
        lopt = module.optimizer_of(name)
        with players.active_player(module.trainer.strategy, name):
            lopt.zero_grad(set_to_none=True)
            if module.direct_steps:
                loss.backward()
            else:
                module.manual_backward(loss)
            players._step(lopt, lopt.optimizer, module.direct_steps)
        return True

    with patched(players, "player_step", player_step):
        yield


# ----------------------------------------------------------------- profile, whole process
def profile_ganscale(cfg, sync, top: int = 22) -> str:
    prof = cProfile.Profile()
    prof.enable()
    ganscale_run(cfg, (1, 2), sync)
    prof.disable()
    s = io.StringIO()
    st = pstats.Stats(prof, stream=s)
    st.sort_stats("tottime").print_stats(top)
    lines = [ln for ln in s.getvalue().splitlines() if ln.strip()]
    start = next(i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls"))
    return "\n".join(ln.replace(REPO + "/", "").replace(sys.prefix, "<python>") for ln in lines[start:])


def process_seconds(args: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of a child process; CPU = user + system time of the child."""
    import resource

    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""), WANDB_MODE="disabled")
    env.pop("GANSCALE_RUN_DIR", None)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=REPO, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


# ----------------------------------------------------------------- main
def measure(job: str, args, root: str) -> dict:
    import torch

    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    extra = ("trainer.accelerator=gpu",) if args.device == "cuda" else ()
    warm, n = args.warmup, args.iters
    total = warm + n + 1
    marks = (warm, warm + n)
    # on CPU the ratio is of process CPU time (fair on a shared machine, see _harness.Clock); on a GPU of wall time
    use = (lambda c: c.wall) if args.device == "cuda" else (lambda c: c.cpu)
    steps = job_config(job, total, root, extra).trainer
    if not all(steps.step_ends(m) for m in marks):  # A's clock ticks where Lightning steps start
        raise SystemExit(f"{job}: --warmup {warm} and --warmup + --iters {warm + n} must be where a training "
                         f"step ends (trainer.iters_per_step={steps.iters_per_step}): use multiples of it")
    a, a_ng, b, walls = [], [], [], {"a": [], "a_ng": [], "b": []}
    for r in range(args.repeats):  # interleaved: A, A', B in every repeat
        cfg = job_config(job, total, root, (*extra, f"run.name={job}-a{r}"))
        c = ganscale_run(cfg, marks, sync)
        a.append(use(c) / n)
        walls["a"].append(c.wall / n)
        cfg = job_config(job, total, root, (*extra, f"run.name={job}-g{r}"))
        c = ganscale_run(cfg, marks, sync, guard=False)
        a_ng.append(use(c) / n)
        walls["a_ng"].append(c.wall / n)
        c = plain_loop(job_config(job, total, root, extra), total, marks, sync)
        b.append(use(c) / n)
        walls["b"].append(c.wall / n)
        print(f"{job} repeat {r}: ganscale {a[-1] * 1e3:.3f} ms/it, without guard {a_ng[-1] * 1e3:.3f}, "
              f"plain {b[-1] * 1e3:.3f} (wall {walls['a'][-1] * 1e3:.1f} / {walls['a_ng'][-1] * 1e3:.1f} / "
              f"{walls['b'][-1] * 1e3:.1f})", flush=True)
    out = {"job": job, "k": steps.iters_per_step, "a": a, "a_ng": a_ng, "b": b, "walls": walls,
           "ratio": statistics.median(a) / statistics.median(b),
           "ratio_ng": statistics.median(a_ng) / statistics.median(b),
           "wall_ratio": statistics.median(walls["a"]) / statistics.median(walls["b"]),
           "pair_ratios": [x / y for x, y in zip(a, b)]}
    if args.profile:
        out["profile"] = profile_ganscale(job_config(job, max(200, warm), root, (*extra, f"run.name={job}-prof")), sync)
    if job == "ring" and args.process_iters:
        pa, pb = [], []
        for r in range(args.process_repeats):
            pa.append(process_seconds(["-m", "ganscale", "train", f"trainer.max_iters={args.process_iters}",
                                       f"run.root={root}", f"run.name=proc{r}", "wandb.mode=disabled"]))
            pb.append(process_seconds([os.path.abspath(__file__), "--plain", job,
                                       "--process-iters", str(args.process_iters)]))
            print(f"{job} process {r}: ganscale {pa[-1][0]:.2f} s wall / {pa[-1][1]:.2f} s CPU, "
                  f"plain {pb[-1][0]:.2f} / {pb[-1][1]:.2f}", flush=True)
        k = 0 if args.device == "cuda" else 1
        out.update(process_a=[x[k] for x in pa], process_b=[x[k] for x in pb],
                   process_ratio=statistics.median(x[k] for x in pa) / statistics.median(x[k] for x in pb))
    return out


def report(results: list[dict], args, note: str) -> str:
    ms = lambda v: f"{statistics.median(v) * 1e3:.3f}"  # noqa: E731
    kind = "wall" if args.device == "cuda" else "CPU"
    lines = [f"| job (iterations per Lightning step) | ganscale ms/it ({kind}) | ganscale without finite guard | "
             "plain loop ms/it | ratio | ratio without guard | per-repeat ratios | wall-time ratio |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['job']} ({r['k']}) | {ms(r['a'])} | {ms(r['a_ng'])} | {ms(r['b'])} | **{r['ratio']:.3f}x** | "
                     f"{r['ratio_ng']:.3f}x | {', '.join(f'{x:.2f}' for x in r['pair_ratios'])} | {r['wall_ratio']:.2f}x |")
    for r in results:
        if "process_ratio" in r:
            lines += ["", f"Whole process ({kind} time), {r['job']}, {args.process_iters} iterations: ganscale "
                          f"{statistics.median(r['process_a']):.2f} s, plain {statistics.median(r['process_b']):.2f} s "
                          f"(medians of {len(r['process_a'])}): **{r['process_ratio']:.3f}x**"]
    for r in results:
        if "profile" in r:
            lines += ["", f"cProfile of ganscale, {r['job']} (top by own time):", "", "```", r["profile"], "```"]
    head = (f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, device {args.device}, "
            f"{args.repeats} interleaved repeats of {args.iters} iterations after {args.warmup} warm-up, "
            f"torch threads {os.environ.get('OMP_NUM_THREADS', 'default')}, load average "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs. {note}")
    return head + "\n\n" + "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jobs", default="ring,dcgan")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--iters", type=int, default=400, help="timed iterations per repeat")
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--process-iters", type=int, default=2000, help="whole-process comparison (ring); 0 = skip")
    p.add_argument("--process-repeats", type=int, default=3)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--no-profile", dest="profile", action="store_false")
    p.add_argument("--note", default="")
    p.add_argument("--out", default=None, help="markdown with the figures (default: print only)")
    p.add_argument("--plain", default=None, help=argparse.SUPPRESS)  # the plain loop as a whole process
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)  # what ganscale does for toy data (trainer.num_threads=0)
    with tempfile.TemporaryDirectory() as root:
        if args.plain:
            cfg = job_config(args.plain, args.process_iters, root)
            plain_loop(cfg, cfg.trainer.max_iters, (0, 0), lambda: None)
            return 0
        results = [measure(job, args, root) for job in args.jobs.split(",")]
    text = report(results, args, args.note)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
