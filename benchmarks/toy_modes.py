"""Mode collapse on the 2D ring and grid: the PacGAN/VEEGAN protocol over several seeds.

    nice -n 10 python benchmarks/toy_modes.py                 # the published table (docs/toy_modes.md)
    python benchmarks/toy_modes.py --mixtures ring --methods gan,pack4 --seeds 2 --iters 500 \\
        --out-dir /tmp/toy                                                 # a quick look
    nice -n 10 python benchmarks/toy_modes.py --methods default --first-seed 5 --seeds 3 \\
        --name toy_modes_unseen                        # the shipped configs on seeds they were not tuned on

`default` is the shipped config (configs/toy/<mixture>.yaml) unchanged. Every other row is the
vanilla GAN of the published tables built from it: the same networks, loss, learning rates and
batch, but no R1 penalty, no EMA of G (samples come from G itself) and no remedy, trained for
--iters iterations; then the row's remedy switched on. So those rows differ only in the remedy.
Each run trains through `ganscale.train.run.main` (the same code as `ganscale train`) in a process
pool and is evaluated by `ganscale.metrics.modes` (2,500 samples of the run's sampler, HQ within 3
std, a mode is captured if an HQ sample is nearest to it, reverse KL over the HQ histogram).

Writes <out-dir>/toy_modes.md (mean ± standard error over seeds, per-seed modes, published rows),
<out-dir>/toy_modes.png (one scatter per method and mixture, first seed) and toy_modes.json.
Runs live in --work-dir; a finished run of exactly the same config is reused (marked "reused" in
toy_modes.json), so an interrupted benchmark resumes where it stopped. Any other run there is
deleted and trained afresh.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import platform
import shutil
import signal
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The vanilla GAN: constant learning rates, no regularizer, no EMA, no remedy; a method then
# switches on its own.
PLAIN = [
    *(f"optim.{player}.{key}={value}" for player in ("G", "D")  # the defaults: a constant lr
      for key, value in (("schedule", "constant"), ("decay_start", 0.0), ("final_scale", 0.0))),
    "reg.r1_gamma=0",
    "reg.gp_weight=0",
    "gan.ema.enabled=false",
    "unroll.steps=0",
    "model.remedies.pack=1",
    "model.remedies.minibatch_discrimination.enabled=false",
    "model.remedies.minibatch_stddev.enabled=false",
    "model.remedies.feature_matching.weight=0",
    "model.remedies.feature_matching.adversarial_weight=1",
]

# name -> (label, overrides after PLAIN; None = the shipped config unchanged)
METHODS: dict[str, tuple[str, list[str] | None]] = {
    "gan": ("plain GAN (no R1, no EMA)", []),
    "unroll5": ("unrolled k=5", ["unroll.steps=5"]),
    "unroll10": ("unrolled k=10", ["unroll.steps=10"]),
    "pack2": ("PacGAN m=2", ["model.remedies.pack=2"]),
    "pack4": ("PacGAN m=4", ["model.remedies.pack=4"]),
    "mbd": ("minibatch discrimination", ["model.remedies.minibatch_discrimination.enabled=true"]),
    "default": ("shipped default", None),
}

# Published rows (modes captured, % HQ): Lin et al. 2018 (PacGAN) Table 1 and Elfeki et al. 2019
# (GDPP) Table 1; VEEGAN's and the unrolled GAN's ring rows are from Srivastava et al. 2017.
PUBLISHED = {
    "ring": [("GAN", 6.3, 98.2), ("PacGAN4", 7.8, 95.9), ("GDPP", 8.0, 71.7), ("VEEGAN", 8.0, 52.9),
             ("unrolled GAN (VEEGAN's run)", 7.6, 35.6)],
    "grid": [("GAN", 17.3, 94.8), ("PacGAN4", 24.8, 93.6), ("GDPP", 24.8, 68.5)],
}


DEFAULT_ITERS = 2000


def method_overrides(method: str, iters: int | None = None) -> list[str]:
    """Overrides of `method` over the shipped config (the vanilla rows also get --iters)."""
    label, extra = METHODS[method]
    if extra is None:
        return []
    return [*PLAIN, *extra, *([f"trainer.max_iters={iters}"] if iters else [])]


def run_one(job: dict) -> dict:
    """Train one (mixture, method, seed) in this worker process; returns metrics and samples."""
    import torch

    torch.set_num_threads(1)
    from ganscale.config import load_config
    from ganscale.train.run import main

    run_dir = os.path.join(job["work_dir"], job["mixture"], f"{job['method']}-s{job['seed']}")
    overrides = ["trainer.progress_bar=false", "trainer.plot_every=0", "trainer.eval_every=0",
                 "trainer.ckpt_every=0", *method_overrides(job["method"], job["iters"]), *job["extra"], f"seed={job['seed']}",
                 f"run.root={os.path.dirname(run_dir)}", f"run.name={os.path.basename(run_dir)}",
                 "run.resume=never", f"config_name={job['mixture']}"]
    cfg = load_config([os.path.join(REPO, "configs", "toy", f"{job['mixture']}.yaml")], overrides)
    done = finished_run(run_dir, cfg)
    if done is not None:
        return {**{k: job[k] for k in ("mixture", "method", "seed")}, **done}
    # an unfinished run or one of another config: the work dir is scratch, start it afresh
    shutil.rmtree(run_dir, ignore_errors=True)
    os.makedirs(run_dir)
    t0 = time.perf_counter()
    with open(os.path.join(run_dir, "train.log"), "w") as log:
        # this worker process serves one job (maxtasksperchild=1): send everything to the run's log
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        run = main(cfg)
    seconds = time.perf_counter() - t0
    with open(os.path.join(run_dir, "final_metrics.json")) as f:
        metrics = json.load(f)
    samples = eval_samples(run.module, cfg)
    return {**{k: job[k] for k in ("mixture", "method", "seed")}, "metrics": metrics,
            "seconds": seconds, "iters": cfg.trainer.max_iters, "samples": samples.numpy().tolist()}


def eval_samples(module, cfg):
    """The samples EvalAndPlot evaluated at the end of the run (same number, same seed)."""
    from ganscale.metrics.callback import SAMPLE_SEED_OFFSET
    from ganscale.metrics.modes import NUM_EVAL_SAMPLES

    return module.sample(NUM_EVAL_SAMPLES, seed=cfg.seed + SAMPLE_SEED_OFFSET)


def finished_run(run_dir: str, cfg) -> dict | None:
    """The result of an earlier, completed run of exactly `cfg` in run_dir (None if there is none).

    A run is reused when its saved config equals cfg and its final checkpoint and metrics exist, so
    an interrupted benchmark picks up where it stopped. The saved config is read back through the
    schema first: a run saved before a config field was added gets that field's neutral default
    (config_from_dict), which is the behaviour it ran with. Seconds are then the time between the run's
    config.yaml and its final checkpoint (setup included)."""
    from ganscale.config.load import to_yaml
    from ganscale.ops.checkpoint.store import iteration_of, latest_checkpoint
    from ganscale.train.restore import load_module

    metrics_file, config_file = os.path.join(run_dir, "final_metrics.json"), os.path.join(run_dir, "config.yaml")
    ckpt = latest_checkpoint(os.path.join(run_dir, "checkpoints"))
    if not (ckpt and iteration_of(ckpt) == cfg.trainer.max_iters and os.path.isfile(metrics_file)
            and os.path.isfile(config_file) and saved_config_yaml(config_file) == to_yaml(cfg)):
        return None
    samples = eval_samples(load_module(ckpt), cfg)
    return {"metrics": json.load(open(metrics_file)), "seconds": os.path.getmtime(ckpt) - os.path.getmtime(config_file),
            "iters": cfg.trainer.max_iters, "samples": samples.numpy().tolist(), "reused": True}


def saved_config_yaml(path: str) -> str | None:
    """A run's config.yaml as the current schema reads it (None if it no longer validates)."""
    import yaml

    from ganscale.config import config_from_dict
    from ganscale.config.load import to_yaml
    from ganscale.errors import ConfigError

    try:
        with open(path) as f:
            return to_yaml(config_from_dict(yaml.safe_load(f)))
    except (ConfigError, yaml.YAMLError):
        return None


def mean_se(xs: list[float]) -> tuple[float, float]:
    m = sum(xs) / len(xs)
    if len(xs) < 2:
        return m, float("nan")
    var = sum((x - m) ** 2 for x in xs) / (len(xs) - 1)
    return m, math.sqrt(var / len(xs))


def fmt(xs: list[float], scale: float = 1.0, digits: int = 1) -> str:
    m, se = mean_se([x * scale for x in xs])
    return f"{m:.{digits}f}" if math.isnan(se) else f"{m:.{digits}f} ± {se:.{digits}f}"


def summarize(results: list[dict], mixture: str, method: str) -> dict:
    rs = sorted((r for r in results if r["mixture"] == mixture and r["method"] == method), key=lambda r: r["seed"])
    k = rs[0]["metrics"]["num_modes"]
    return {
        "rows": rs, "num_modes": k,
        "modes": [r["metrics"]["modes"] for r in rs],
        "hq": [r["metrics"]["hq_fraction"] for r in rs],
        "kl": [r["metrics"]["kl"] for r in rs],
        "all_modes": sum(r["metrics"]["modes"] == k for r in rs),
        "seconds": [r["seconds"] for r in rs],
        "iters": rs[0]["iters"],
    }


GOALS = {"ring": 0.98, "grid": 0.97}
"""% HQ the shipped configs aim for, with every mode in every seed (issue goal; above every published row)."""


def findings(results: list[dict], args, mixture: str) -> list[str]:
    """Plain-language statements computed from the results (so the text cannot drift from the numbers)."""
    out = []
    for method in args.method_list:
        s = summarize(results, mixture, method)
        n, k = len(s["modes"]), s["num_modes"]
        label = METHODS[method][0]
        if method == "default":
            goal = GOALS[mixture]
            hq_min = min(s["hq"])
            short = []
            if s["all_modes"] < n:
                short.append(f"modes missed in {n - s['all_modes']} seed(s)")
            if hq_min < goal:
                short.append(f"lowest seed {100 * hq_min:.1f}% HQ, {100 * (goal - hq_min):.1f} points short")
            out.append(f"- Shipped default: all {k} modes in {s['all_modes']}/{n} seeds; % HQ per seed "
                       f"{', '.join(f'{100 * h:.1f}' for h in s['hq'])}. Goal (every mode in every seed, >= "
                       f"{100 * goal:.0f}% HQ in every seed): " + ("met." if not short else f"NOT met ({'; '.join(short)})."))
        elif method == "gan":
            collapsed = sum(m < k for m in s["modes"])
            out.append(f"- {label}: missed modes in {collapsed}/{n} seeds "
                       f"({'it collapses in this setting' if collapsed else 'no collapse in this setting'}).")
    return out


def write_markdown(results: list[dict], args, path: str, fig_name: str, wall: float) -> str:
    import torch

    lines = [
        "# Mode collapse on the 2D ring and grid (PacGAN/VEEGAN protocol)",
        "",
        f"Generated by `{args.command}` in {wall / 60:.1f} min on {time.strftime('%Y-%m-%d', time.gmtime())} "
        f"({len(args.seed_list)} seeds: {', '.join(map(str, args.seed_list))}; torch {torch.__version__}, "
        f"{platform.machine()} CPU, {args.jobs} worker processes of one thread each, on a shared machine). "
        "Do not edit by hand: rerun the command.",
        "",
        "Protocol (ganscale/metrics/modes.py): 2,500 samples of the trained sampler (G_ema when the config "
        "keeps one); a sample is high quality (HQ) if it is within 3 std of its nearest mode; a mode is "
        "captured if at least one HQ sample is nearest to it; KL is PacGAN's reverse KL(p || uniform) of "
        "the HQ samples' histogram over the modes. Mean ± standard error over seeds.",
        "",
        "`shipped default` is `configs/toy/<mixture>.yaml` unchanged (G_ema sampled). Every other row is "
        "the vanilla GAN of the published tables built from it (same networks, loss, learning rates and "
        "batch; constant learning rates, no R1, no EMA: G sampled; no remedy; "
        f"{args.iters} iterations) with the row's remedy switched on. Extra overrides for every run: "
        f"`{' '.join(args.set) or 'none'}`.",
        "",
    ]
    for mixture in args.mixture_list:
        first = summarize(results, mixture, args.method_list[0])
        k = first["num_modes"]
        lines += [f"## {mixture} ({k} modes)", "",
                  f"| method | modes (of {k}) | % HQ | KL | all {k} modes in | iterations | s / run | modes per seed |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for method in args.method_list:
            s = summarize(results, mixture, method)
            label, extra = METHODS[method]
            cfg = "shipped config" if extra is None else (" ".join(extra) or "vanilla")
            lines.append(
                f"| {label} (`{cfg}`) | {fmt(s['modes'])} | {fmt(s['hq'], 100)} | {fmt(s['kl'], 1, 3)} | "
                f"{s['all_modes']}/{len(s['modes'])} | {s['iters']} | {fmt(s['seconds'], 1, 0)} | "
                f"{', '.join(map(str, s['modes']))} |")
        for name, modes, hq in PUBLISHED.get(mixture, []):
            lines.append(f"| published: {name} | {modes} | {hq} | – | – | – | – | – |")
        lines += ["", *findings(results, args, mixture), ""]
    lines += [f"![samples of the first seed per method]({fig_name})", ""]
    text = "\n".join(lines)
    notes = kept_notes(path)  # read before the page is truncated
    with open(path, "w") as f:
        f.write(text + notes)
    return text


NOTES = "<!-- notes below this line are written by hand; benchmarks/toy_modes.py keeps them -->"


def kept_notes(path: str) -> str:
    """The hand-written part of an existing page (from the NOTES marker on), kept on regeneration."""
    if not os.path.isfile(path):
        return ""
    with open(path) as f:
        old = f.read()
    return "\n" + old[old.index(NOTES):] if NOTES in old else ""


def write_figure(results: list[dict], args, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from ganscale.config import load_config
    from ganscale.data.toy import mixture_means

    rows, cols = len(args.mixture_list), len(args.method_list)
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.5 * rows), dpi=110, squeeze=False)
    for i, mixture in enumerate(args.mixture_list):
        means = mixture_means(load_config([os.path.join(REPO, "configs", "toy", f"{mixture}.yaml")]).data.toy).numpy()
        span = float(abs(means).max()) * 1.4 + 0.3
        for j, method in enumerate(args.method_list):
            s = summarize(results, mixture, method)
            r = s["rows"][0]
            x = np.asarray(r["samples"])
            ax = axes[i][j]
            ax.scatter(x[:, 0], x[:, 1], s=1, alpha=0.3, color="tab:blue", rasterized=True)
            ax.scatter(means[:, 0], means[:, 1], s=12, marker="x", color="tab:red", linewidths=0.8)
            ax.set_xlim(-span, span)
            ax.set_ylim(-span, span)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            m = r["metrics"]
            ax.set_title(f"{METHODS[method][0]}\n{mixture}, seed {r['seed']}: {m['modes']}/{m['num_modes']}, "
                         f"{100 * m['hq_fraction']:.0f}% HQ", fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mixtures", default="ring,grid", help="comma list of ring, grid")
    p.add_argument("--methods", default=",".join(METHODS), help=f"comma list of {', '.join(METHODS)}")
    p.add_argument("--seeds", type=int, default=5, help="how many seeds: first-seed .. first-seed+N-1")
    p.add_argument("--first-seed", type=int, default=0,
                   help="the first seed (the shipped configs were tuned on 0-4: 5 and up are unseen)")
    p.add_argument("--name", default="toy_modes", help="file stem of the table, figure and json in --out-dir")
    p.add_argument("--jobs", type=int, default=2, help="worker processes")
    p.add_argument("--iters", type=int, default=DEFAULT_ITERS,
                   help="iterations of the vanilla-based rows (the shipped default runs its own length)")
    p.add_argument("--set", nargs="*", default=[], help="extra key=value overrides for every run")
    p.add_argument("--out-dir", default=os.path.join(REPO, "docs"), help="where the table and figure go")
    p.add_argument("--work-dir", default=os.path.join(REPO, "runs", "toy_modes"), help="run directories")
    args = p.parse_args(argv)
    args.mixture_list = [m for m in args.mixtures.split(",") if m]
    args.method_list = [m for m in args.methods.split(",") if m]
    bad = [m for m in args.mixture_list if m not in ("ring", "grid")] + \
          [m for m in args.method_list if m not in METHODS]
    if bad or args.seeds < 1 or args.jobs < 1:
        p.error(f"unknown mixtures/methods {bad} (choose from ring, grid and {', '.join(METHODS)}), "
                "or --seeds/--jobs < 1")
    args.seed_list = list(range(args.first_seed, args.first_seed + args.seeds))
    args.command = "python benchmarks/toy_modes.py" + ("" if argv is None and len(sys.argv) == 1
                                                       else " " + " ".join(sys.argv[1:] if argv is None else argv))
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    jobs = [{"mixture": mx, "method": me, "seed": s, "extra": args.set, "work_dir": args.work_dir, "iters": args.iters}
            for mx in args.mixture_list for me in args.method_list for s in args.seed_list]
    # Longest first (unrolling costs most) so the pool does not end on one straggler.
    jobs.sort(key=lambda j: -int(j["method"][6:]) if j["method"].startswith("unroll") else 0)
    t0 = time.perf_counter()
    results = []
    # on SIGTERM leave through the `with` below, which terminates the pool's workers too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ctx = mp.get_context("spawn")
    with ctx.Pool(args.jobs, maxtasksperchild=1) as pool:
        for r in pool.imap_unordered(run_one, jobs):
            results.append(r)
            m = r["metrics"]
            print(f"[{len(results)}/{len(jobs)}] {r['mixture']:4s} {r['method']:8s} seed {r['seed']}: "
                  f"{m['modes']}/{m['num_modes']} modes, {100 * m['hq_fraction']:.1f}% HQ, KL {m['kl']:.3f} "
                  f"({r['seconds']:.0f} s)", flush=True)
    wall = time.perf_counter() - t0
    with open(os.path.join(args.out_dir, f"{args.name}.json"), "w") as f:
        json.dump([{k: v for k, v in r.items() if k != "samples"} for r in results], f, indent=1)
    write_figure(results, args, os.path.join(args.out_dir, f"{args.name}.png"))
    print(write_markdown(results, args, os.path.join(args.out_dir, f"{args.name}.md"), f"{args.name}.png", wall))
    return 0


if __name__ == "__main__":
    sys.exit(main())
