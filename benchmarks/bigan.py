"""BiGAN on permutation-invariant MNIST against the authors' log, in one command:

    python benchmarks/bigan.py                                   # train at a CPU budget, write docs/bigan.md
    python benchmarks/bigan.py -- trainer.max_iters=187600       # the authors' 400 epochs (a GPU job)
    python benchmarks/bigan.py --run runs/bigan-mnist            # report a run trained already
    python benchmarks/bigan.py --run runs/a --also runs/b        # ... and other runs' curves beside it

Steps (each skipped when its output exists; --force redoes them):
1. `ganscale data pack ../shared/data/mnist data/mnist-shards`             (the train split, no labels used)
2. `ganscale train configs/mnist/bigan.yaml trainer.max_iters=N ...`       (the game's evaluation every
   trainer.eval_every: <run>/latent_metrics.jsonl)
3. the final E and G: 1-NN (euclidean) and linear-probe accuracy of E(x) on the 10,000 test images
   (fitted on the 60,000 train images), the reconstruction ratio; the curve over the run; sample and
   reconstruction grids; docs/bigan.md (+ docs/bigan/results.json).

The bar (the BiGAN authors' MNIST log, jeffdonahue/bigan): 1-NN 95.4-95.9 %, ratio 0.62-0.77.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _mnist_common import REPO, cpu_note, default_mnist, pack_mnist, portable, train  # noqa: E402

sys.path.insert(0, REPO)

PAPER = {"nn1_acc": (0.954, 0.959), "recon_ratio": (0.62, 0.77)}
BAR = {"nn1_acc": 0.95, "recon_ratio": 0.8}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mnist", default=default_mnist(), help="folder of the MNIST IDX files")
    p.add_argument("--config", default=os.path.join(REPO, "configs", "mnist", "bigan.yaml"))
    p.add_argument("--shards", default=os.path.join(REPO, "data", "mnist-shards"))
    p.add_argument("--runs", default=os.path.join(REPO, "runs", "benchmarks"))
    p.add_argument("--name", default="bigan-mnist", help="run name")
    p.add_argument("--iters", type=int, default=1500, help="training iterations (469 = one epoch at batch 128)")
    p.add_argument("--run", default=None, help="report this run directory instead of training one")
    p.add_argument("--also", nargs="*", default=[], help="other runs (directories) whose curves the page shows too")
    p.add_argument("--docs", default=os.path.join(REPO, "docs"))
    p.add_argument("--force", action="store_true", help="redo every step")
    p.add_argument("overrides", nargs="*", help="config overrides for training (after --)")
    return p.parse_args(argv)


def read_jsonl(path: str) -> list[dict]:
    return [json.loads(line) for line in open(path) if line.strip()] if os.path.isfile(path) else []


def grids(run_dir: str, mnist: str, out_dir: str) -> dict[str, str]:
    """Samples of G (fixed seed) and test digits above their reconstructions G(E(x))."""
    import torch

    from ganscale.metrics.classifier import load_digits
    from ganscale.metrics.latent import reconstruct, to_unit_range
    from ganscale.metrics.plots import image_grid, to_uint8_images
    from ganscale.train.restore import load_module

    m = load_module(run_dir)
    os.makedirs(out_dir, exist_ok=True)
    samples = os.path.join(out_dir, "samples.png")
    image_grid(to_uint8_images(m.sample(100, seed=0)), samples, nrow=10)
    x, y = load_digits(mnist, "test")
    pick = torch.cat([torch.nonzero(y == d)[:10, 0] for d in range(10)])  # ten of each digit
    real, recon = to_unit_range(x[pick]), reconstruct(m.G, m.E, x[pick])
    rows = torch.stack([torch.stack([real[d * 10:(d + 1) * 10], recon[d * 10:(d + 1) * 10]]) for d in range(10)])
    pairs = os.path.join(out_dir, "reconstructions.png")
    image_grid(to_uint8_images(rows.reshape(-1, *x.shape[1:])), pairs, nrow=10)
    return {"samples": samples, "reconstructions": pairs}


def curve_plot(rows: list[dict], path: str, others: list[dict] = ()) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    it = [r["iter"] for r in rows]
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    ax[0].plot(it, [100 * r["nn1_acc"] for r in rows], "o-", label="1-NN on E(x)")
    ax[0].plot(it, [100 * r["probe_acc"] for r in rows], "s-", label="linear probe on E(x)")
    ax[0].axhspan(100 * PAPER["nn1_acc"][0], 100 * PAPER["nn1_acc"][1], color="g", alpha=0.2, label="authors' 1-NN")
    ax[0].set_xlabel("iteration")
    ax[0].set_ylabel("test accuracy (%)")
    ax[0].legend(fontsize=8)
    ax[1].plot(it, [r["recon_ratio"] for r in rows], "o-", label="ours")
    for o in others:
        oit = [r["iter"] for r in o["curve"]]
        ax[0].plot(oit, [100 * r["nn1_acc"] for r in o["curve"]], "o--", label=f"1-NN, {o['name']}")
        ax[1].plot(oit, [r["recon_ratio"] for r in o["curve"]], "o--", label=o["name"])
    ax[1].axhspan(*PAPER["recon_ratio"], color="g", alpha=0.2, label="authors")
    ax[1].set_xlabel("iteration")
    ax[1].set_ylabel("reconstruction ratio")
    ax[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def train_seconds(run_dir: str) -> float:
    """Wall time from the run's config to its newest checkpoint (for runs trained outside this script)."""
    from ganscale.ops.checkpoint.store import list_checkpoints

    ckpts = list_checkpoints(os.path.join(run_dir, "checkpoints"))
    return os.path.getmtime(ckpts[-1]) - os.path.getmtime(os.path.join(run_dir, "config.yaml")) if ckpts else 0.0


def d_loss_trend(run_dir: str) -> tuple[float, float]:
    """Mean logged loss/D over the first and the last fifth of the run (metrics.csv)."""
    import csv

    rows = [float(r["loss/D"]) for r in csv.DictReader(open(os.path.join(run_dir, "metrics.csv"))) if r.get("loss/D")]
    k = max(1, len(rows) // 5)
    return sum(rows[:k]) / k, sum(rows[-k:]) / k


def curve_table(curve: list[dict]) -> list[str]:
    lines = ["| iteration | epoch | 1-NN | linear probe | recon ratio | ‖x − G(E(x))‖ | random pair |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in curve:
        lines.append(f"| {r['iter']} | {r['iter'] * 128 / 60000:.1f} | {100 * r['nn1_acc']:.2f} % | "
                     f"{100 * r['probe_acc']:.2f} % | {r['recon_ratio']:.3f} | {r['recon_err']:.2f} | "
                     f"{r['recon_err_random']:.2f} |")
    return lines


def schedule(cfg) -> str:
    o = cfg.optim.G
    decay = f" from {o.decay_start:g} of the run to x{o.final_scale:g}" if o.schedule != "constant" else ""
    return f"{cfg.trainer.max_iters} iterations, lr {o.lr:g} {o.schedule}{decay}"


def write_doc(res: dict, path: str) -> None:
    f = res["final"]
    ok = {"nn1_acc": f["nn1_acc"] >= BAR["nn1_acc"], "recon_ratio": f["recon_ratio"] <= BAR["recon_ratio"]}
    epochs = res["iterations"] * 128 / 60000
    best = max(res["curve"], key=lambda r: r["nn1_acc"])
    lines = [
        "# BiGAN on permutation-invariant MNIST",
        "",
        "Written by `python benchmarks/bigan.py` (the game: `ganscale/games/bigan.py`; the metrics:",
        "`ganscale/metrics/latent.py`; the config: `configs/mnist/bigan.yaml`, the BiGAN authors' MNIST setting:",
        "1024-wide 2-layer MLPs with BatchNorm, z 50-dim uniform, batch 128, Adam 2e-4 with beta1 0.5).",
        "",
        "    python benchmarks/bigan.py                                   # this page, at a CPU budget",
        "    ganscale encode runs/benchmarks/bigan-mnist --data ../shared/data/mnist --split test --out z.npy",
        "",
        f"## Result after {res['iterations']} iterations ({epochs:.1f} epochs of the authors' 400)",
        "",
        *([f"The run was stopped at iteration {res['iterations']} of its {res['max_iters']}-iteration schedule "
           "(the time ran out); the figures are its last evaluation and the grids its newest checkpoint.", ""]
          if res["iterations"] < res["max_iters"] else []),
        "| | ours | the authors' log | bar | met |",
        "| --- | --- | --- | --- | --- |",
        f"| 1-NN accuracy on E(x), test (euclidean, fit on 60k train) | {100 * f['nn1_acc']:.2f} % | 95.4-95.9 % "
        f"| >= 95 % | {'yes' if ok['nn1_acc'] else 'no'} |",
        f"| reconstruction ratio mean‖x − G(E(x))‖ / random pairs | {f['recon_ratio']:.3f} | 0.62-0.77 | <= 0.8 "
        f"| {'yes' if ok['recon_ratio'] else 'no'} |",
        f"| linear probe on E(x) (logistic regression), test | {100 * f['probe_acc']:.2f} % | | | |",
        "",
        f"Trained for {res['train_seconds'] / 60:.0f} minutes of wall time on a shared CPU ({res['cpu']}), "
        f"schedule: {res['schedule']}.",
        "",
        "## The curve",
        "",
        *curve_table(res["curve"]),
        "",
        f"Best 1-NN along the run: {100 * best['nn1_acc']:.2f} % at iteration {best['iter']}. D's loss (the sum of"
        f" its real and fake terms; 2 ln 2 = 1.39 at chance) averaged {res['d_loss'][0]:.2f} over the first fifth"
        f" of the run and {res['d_loss'][1]:.2f} over the last: the lower, the more D wins against G and E.",
    ]
    for other in res["others"]:
        lines += ["", f"Another run, `{other['name']}` ({other['schedule']}):", "", *curve_table(other["curve"])]
    lines += [
        "",
        "![curve](bigan/curve.png)",
        "",
        "Samples G(z) (z uniform, seed 0) and test digits (odd rows) above their reconstructions G(E(x)) (even rows):",
        "",
        "![samples](bigan/samples.png) ![reconstructions](bigan/reconstructions.png)",
        "",
        "## How it is measured",
        "",
        "As in the authors' code (jeffdonahue/bigan, `train_gan.py`): the 1-NN classifier uses the *euclidean*",
        "distance between E's outputs before the squash into the prior's box (`E.features`: their `NNC_e` on",
        "`l2distable`, the encoder's logits); the reconstruction ratio divides the mean distance ‖x − G(E(x))‖",
        "by the mean distance of G(E(x)) to the next image of the set (their `EGr` over `EGr_b`), on the 10,000",
        "test images; the linear probe is a multinomial logistic regression on the same standardised features",
        "(L-BFGS, full batch). E and G run with BatchNorm's running statistics. No label reaches training",
        "(`data.shards.labels=false`); they are read only by the evaluation.",
        "",
        "## Differences from the authors' run, and what is missing",
        "",
        "- Length: the authors train 400 epochs (200 at the full learning rate, then 200 decaying). Here the",
        "  schedule is compressed to the CPU budget above (linear decay over the second half to 1/100, theirs",
        "  exponential). The full length is `-- trainer.max_iters=187600` (a GPU job; not run here).",
        "- The D update and then the G/E update run on the same real batch with fresh z; the authors update",
        "  all three at once from one forward pass (`game.bigan.update=simultaneous` does that: no",
        "  difference at 1,500 iterations, [bigan/history.md](bigan/history.md)); the losses are the same.",
        "- G ends in tanh on [-1, 1] pixels (theirs sigmoid on [0, 1]); the ratio is scale-free.",
        "- E's code is squashed into the uniform prior's box, z = 2 sigmoid(h) - 1, as the authors'",
        "  `UniformDistribution.logits_to_sample` does. Every run before 2026-11-30 left it unbounded, so a",
        "  code outside [-1, 1] marked a real pair: D won (its loss over the last fifth 0.43, against 0.80",
        "  with the squash) and the codes got worse after the first epoch (1-NN 91 %, ratio 0.96 at 1,500",
        "  iterations; [bigan/history.md](bigan/history.md)).",
        "- Open: on this machine the 1-NN accuracy stays at 93-94.8 % from the first to the twenty-first",
        "  epoch (the runs in [bigan/history.md](bigan/history.md)). The authors' log (their README's MNIST",
        "  output) reads 91.50 % before training, 89.94 % after epoch 1, 95.41 % at epoch 25, 95.92 % at",
        "  epoch 200 and 92.10 % at the end of its 400 epochs: the 95.4-95.9 % the bar is taken from are",
        "  mid-run figures, and a run of the authors' own length ends below them.",
        "",
        "Earlier measurements, the variants tried and what each change did: [bigan/history.md](bigan/history.md).",
    ]
    open(path, "w").write("\n".join(lines) + "\n")


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.run:
        run_dir = os.path.abspath(args.run)
        seconds = train_seconds(run_dir)
    else:
        pack_mnist(args.mnist, args.shards, args.force)
        overrides = [f"data.shards.urls={args.shards}", f"game.bigan.eval_data={args.mnist}",
                     f"trainer.max_iters={args.iters}", f"trainer.eval_every={max(1, args.iters // 3)}",
                     f"trainer.ckpt_every={max(1, args.iters // 3)}", "wandb.mode=disabled", *args.overrides]
        t = train(args.config, args.runs, args.name, overrides, args.force)
        run_dir, seconds = t["run_dir"], t["seconds"]
    curve = read_jsonl(os.path.join(run_dir, "latent_metrics.jsonl"))
    if not curve:
        raise SystemExit(f"{run_dir} has no latent_metrics.jsonl: train with game.bigan.eval_data set")
    from ganscale.config import load_config

    cfg = load_config([os.path.join(run_dir, "config.yaml")], [])
    out_dir = os.path.join(args.docs, "bigan")
    t0 = time.perf_counter()
    figs = grids(run_dir, args.mnist, out_dir)
    others = [{"name": os.path.basename(os.path.abspath(d)), "curve": read_jsonl(os.path.join(d, "latent_metrics.jsonl")),
               "schedule": schedule(load_config([os.path.join(d, "config.yaml")], []))} for d in args.also]
    others = [o for o in others if o["curve"]]
    figs["curve"] = curve_plot(curve, os.path.join(out_dir, "curve.png"), others)
    # a run outside the repository is named by its folder (results in docs/ must not name the machine)
    shown = run_dir if run_dir.startswith(REPO + os.sep) else os.path.basename(run_dir)
    res = {"run_dir": shown, "iterations": curve[-1]["iter"], "final": curve[-1], "curve": curve,
           "train_seconds": round(seconds, 1), "max_iters": cfg.trainer.max_iters, "figures": figs,
           "cpu": cpu_note().replace("at the end of the run", "when this page was written") if args.run else cpu_note(),
           "schedule": schedule(cfg), "others": others, "d_loss": d_loss_trend(run_dir),
           "report_seconds": round(time.perf_counter() - t0, 1)}
    json.dump(portable(res), open(os.path.join(out_dir, "results.json"), "w"), indent=2)
    write_doc(res, os.path.join(args.docs, "bigan.md"))
    print(json.dumps(portable({k: res[k] for k in ("iterations", "final", "train_seconds")}), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
