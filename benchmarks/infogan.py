"""InfoGAN's MNIST bar, in one command: train several seeds, score the categorical code's
unsupervised accuracy on the 10,000 test digits (Q's argmax under the best one-to-one assignment
of codes to digits), track L_I, draw the traversals, write docs/infogan.md.

    python benchmarks/infogan.py                                  # seeds 0-4, the paper's 5,000 iterations
    python benchmarks/infogan.py --seeds 0 -- trainer.max_iters=500   # what a busy CPU allows

Steps (a run is reused when its benchmark_train.json exists; --force redoes it):
1. `ganscale train configs/mnist/infogan.yaml seed=S ...`
2. `ganscale eval RUN` for each seed: {"cat_accuracy", "assignment"}; L_I from the run's metrics.csv
3. docs/infogan.md, docs/infogan/l_i.png, docs/infogan/traversal_c<j>.png, docs/infogan/results.json
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _mnist_common import REPO, cpu_note, default_mnist, portable, train  # noqa: E402

sys.path.insert(0, REPO)

BAR = 0.95
"""The paper's 5% error on the categorical code; the bar asks for it in at least 3 of 5 seeds."""


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mnist", default=default_mnist(), help="folder of the MNIST IDX files")
    p.add_argument("--config", default=os.path.join(REPO, "configs", "mnist", "infogan.yaml"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--runs", default=os.path.join(REPO, "runs", "benchmarks"))
    p.add_argument("--doc", default=os.path.join(REPO, "docs", "infogan.md"))
    p.add_argument("--force", action="store_true", help="retrain existing runs")
    p.add_argument("overrides", nargs="*", help="config overrides for training (after --)")
    return p.parse_args(argv)


def info_curve(run_dir: str) -> list[tuple[int, float]]:
    """(iteration, L_I of the categorical code) from the run's metrics.csv."""
    with open(os.path.join(run_dir, "metrics.csv")) as f:
        return [(int(float(r["iter"])), float(r["info/L_I_cat"])) for r in csv.DictReader(f) if r.get("info/L_I_cat")]


def mixed_codes(codes, labels, purity: float = 0.85, share: float = 0.1) -> dict:
    """{code: {digit: images}} for the codes whose most frequent digit holds less than `purity`
    of their test images: the digits a seed merges (each digit listed holds >= `share`)."""
    import numpy as np

    out = {}
    for c in range(int(codes.max()) + 1):
        counts = np.bincount(labels[codes == c], minlength=10)
        n = counts.sum()
        if n and counts.max() < purity * n:
            out[c] = {int(d): int(counts[d]) for d in counts.argsort()[::-1] if counts[d] >= share * n}
    return out


def main(argv=None) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ganscale.metrics.infogan import categorical_scores, hungarian_accuracy, predict_codes
    from ganscale.metrics.ssl import load_split
    from ganscale.metrics.plots import image_grid, to_uint8_images
    from ganscale.ops.checkpoint.store import list_checkpoints
    from ganscale.train.restore import load_module

    args = parse_args(argv)
    out_dir = os.path.splitext(args.doc)[0]
    os.makedirs(out_dir, exist_ok=True)
    results = {}
    test_x, test_y = load_split(args.mnist, "test")
    test_y = test_y.numpy()
    for seed in args.seeds:
        overrides = [f"seed={seed}", f"data.digits.path={args.mnist}", "wandb.mode=disabled", *args.overrides]
        run = train(args.config, args.runs, f"infogan-{seed}", overrides, args.force)
        curve = []  # the accuracy (eval mode) at every checkpoint the run kept (checkpoint.keep_last)
        for path in list_checkpoints(os.path.join(run["run_dir"], "checkpoints")):
            m = load_module(path)
            codes = predict_codes(m.D, m.Q, test_x).numpy()
            curve.append((m.iteration, hungarian_accuracy(codes, test_y, m.Q.num_categories)[0]))
        if not curve:  # no checkpoint folder (an exported run): its final nets only
            m = load_module(run["run_dir"])
            codes = predict_codes(m.D, m.Q, test_x).numpy()
        acc = categorical_scores(m.D, m.Q, test_x, test_y, codes)  # the newest checkpoint: + batch statistics
        results[seed] = {**run, **acc, "l_i": info_curve(run["run_dir"]), "accuracy_curve": curve,
                         "mixed_codes": mixed_codes(codes, test_y),
                         "command": ["ganscale", "train", os.path.relpath(args.config, REPO), *overrides]}
        print(f"seed {seed}: categorical accuracy {acc['cat_accuracy']:.4f} after {m.iteration} iterations")
    best = max(results, key=lambda s: results[s]["cat_accuracy"])
    m = load_module(results[best]["run_dir"])
    for name, images in m.game.traversals(m, seed=0).items():
        image_grid(to_uint8_images(images), os.path.join(out_dir, f"traversal_{name}.png"),
                   nrow=len(images) // m.G.num_categories)
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for seed, r in results.items():
        ax.plot(*zip(*r["l_i"]), label=f"seed {seed}") if r["l_i"] else None
    ax.axhline(math.log(10), color="k", ls=":", lw=1, label="ln 10")
    ax.set(xlabel="iteration", ylabel="L_I (categorical code)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.15, top=0.95)
    fig.savefig(os.path.join(out_dir, "l_i.png"), dpi=110)
    plt.close(fig)
    for r in results.values():  # docs name no machine: the run by its name under --runs
        r["run_dir"] = os.path.relpath(r["run_dir"], args.runs)
    results = portable(results)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    passed = sum(r["cat_accuracy"] >= BAR for r in results.values())
    rows = "\n".join(f"| {s} | {r['iterations']} | {r['seconds'] / 60:.0f} | {r['cat_accuracy']:.4f} | "
                     f"{r['cat_accuracy_batch_stats']:.4f} | "
                     f"{r['l_i'][-1][1] if r['l_i'] else float('nan'):.3f} |" for s, r in results.items())
    mixed = "\n".join(f"- seed {s}: " + "; ".join(
        f"code {c} holds " + " + ".join(f"{d} ({n})" for d, n in digits.items())
        for c, digits in r["mixed_codes"].items()) for s, r in results.items() if r["mixed_codes"])
    iters = sorted({i for r in results.values() for i, _ in r["accuracy_curve"]})
    curve_rows = "\n".join(f"| {s} | " + " | ".join(
        f"{dict(r['accuracy_curve'])[i]:.4f}" if i in dict(r["accuracy_curve"]) else "-" for i in iters) + " |"
        for s, r in results.items())
    text = f"""# InfoGAN on MNIST

Chen et al. 2016 (openai/InfoGAN): G's latent is 62 noise dimensions U(-1, 1), a 10-way categorical
code and 2 continuous codes U(-1, 1); Q, a head on D's trunk trained by D's optimizer (the
reference's `d_` variables), recovers them; lambda * L_I (lambda = 1) is subtracted from both D+Q's
loss and G's loss. The game is `ganscale/games/infogan.py`, its nets `ganscale/nets/infogan.py`,
the config `configs/mnist/infogan.yaml` (Adam beta1 = 0.5, D+Q 2e-4, G 1e-3, batch 128, 5,000
iterations: the reference's 50 epochs of 100 updates).

    python benchmarks/infogan.py                                # this page
    ganscale eval RUN                                           # the categorical code's accuracy
    ganscale sample RUN --code cat=3 --code c0=-1.5 --num 64 --out grid.png   # + grid_traversal_c*.png

Accuracy of the categorical code on the 10,000 test digits (Q's argmax, best one-to-one code ->
digit assignment by scipy's linear_sum_assignment), with D and Q in eval mode (BatchNorm's running
statistics, a mix of real and generated batches) and, beside it, with each chunk of 1,000 test
digits normalised by its own statistics, as the reference's D always runs. Bar: >= {BAR:.0%} in at least 3 of 5 seeds
(the paper: 5% error). **{passed} of {len(results)} seeds reach it here.**

| seed | iterations | minutes | categorical accuracy | same, BatchNorm on batch statistics | last L_I (cat) |
| --- | --- | --- | --- | --- | --- |
{rows}

The categorical accuracy (eval mode) at the checkpoints each run kept:

| seed | {' | '.join(f'iteration {i}' for i in iters)} |
| --- | {' | '.join('---' for _ in iters)} |
{curve_rows}

The codes that mix digits (their most frequent digit under 85 % of their test images; the digits
holding at least 10 %, with their image counts):

{mixed or "- none"}

Minutes are the wall time of training on the machine below; runs that share its cores take
longer (one run alone on the 2 idle cores here: about 20 minutes, 3.9 iterations per second).

Overrides of these runs on top of the config: `{' '.join(args.overrides) or 'none (the paper setting)'}`.

L_I of the categorical code rises toward its maximum ln 10 = {math.log(10):.3f} (Q certain of
the code G was given):

![L_I](infogan/l_i.png)

Traversals of seed {best} (rows: the 10 categories; columns: one continuous code from -2 to 2, the
other 0, one noise vector):

![c0](infogan/traversal_c0.png) ![c1](infogan/traversal_c1.png)

Fidelity to the reference (infogan/models/regularized_gan.py, infogan/algos/infogan_trainer.py,
launchers/run_mnist_exp.py, infogan/misc/{{distributions,custom_ops}}.py), checked line by line: the
latent (62 x U(-1, 1), Categorical(10), 2 x Uniform(1, fix_std=True)), the nets and BatchNorm
placement, G's sigmoid output (the MeanBernoulli mean; D sees pixels in [0, 1]), Q's fc 128 head
on the shared fc 1024 trunk, L_I of the continuous codes as a unit-variance Gaussian for prior and
Q, lambda = 1 subtracted from both losses, Q trained by D's optimizer, fresh fakes for G's step,
Adam (beta1 0.5, D 2e-4, G 1e-3), batch 128 all match. Two things did not: the leaky ReLU slope
(the reference's leaky_rectify is 0.01; ours was 0.1), now 0.01 (`game.infogan.slope`), and the
initialisation (N(0, 0.02) weights, truncated for convolutions, zero biases, BatchNorm scales
N(1, 0.02)), available as `game.infogan.init=reference` but not the default: at the reduced width
measured here it lets D win and G emit noise, while torch's defaults (`init=pytorch`) train.

The runs before these (a reduced width, 1,000 iterations, and the init and slope ablations) and the
line-by-line check against the reference: [infogan/history.md](infogan/history.md).

Measured on {cpu_note()}. Commands: {'; '.join('`' + ' '.join(r['command']) + '`' for r in results.values())}.
"""
    with open(args.doc, "w") as f:
        f.write(text)
    print(f"wrote {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
