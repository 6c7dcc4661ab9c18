"""Binarized MNIST with a G of binary images: the four discrete-output estimators side by side at
the same budget, judged by ganscale's digit classifier.

    python benchmarks/binary_mnist.py                         # all four estimators, writes docs/discrete.md
    python benchmarks/binary_mnist.py --iters 3000 --estimators gumbel_st bgan
    python benchmarks/binary_mnist.py --doc-only              # rewrite the section from the saved json

Steps (each skipped when its output exists; --force redoes them):
1. `ganscale data pack ../shared/data/mnist data/mnist-shards`            (the train split)
2. `ganscale classifier train --data ../shared/data/mnist --out classifiers/mnist.pt`
3. `ganscale train configs/mnist/binary.yaml model.discrete.estimator=E trainer.max_iters=N` for each
   estimator E (run side by side, --parallel at a time)
4. 10,000 samples of each G_ema through the classifier: the class histogram and its KL to uniform,
   the mean confidence, FID in the classifier's feature space against 10,000 binarized train
   images; the same for 10,000 binarized MNIST test images (the floor).
5. docs/discrete.md (the binarized-MNIST section), docs/discrete/binary_mnist.json and sample grids.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _mnist_common import REPO, classifier, cpu_note, default_mnist, pack_mnist, portable, train  # noqa: E402

sys.path.insert(0, REPO)

ESTIMATORS = ["gumbel", "gumbel_st", "reinforce", "bgan"]
BAR_KL = 0.05
SECTION = "## Binarized MNIST"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mnist", default=default_mnist(), help="folder of the MNIST IDX files")
    p.add_argument("--config", default=os.path.join(REPO, "configs", "mnist", "binary.yaml"))
    p.add_argument("--shards", default=os.path.join(REPO, "data", "mnist-shards"))
    p.add_argument("--classifier", default=os.path.join(REPO, "classifiers", "mnist.pt"))
    p.add_argument("--classifier-epochs", type=int, default=2)
    p.add_argument("--runs", default=os.path.join(REPO, "runs", "benchmarks"))
    p.add_argument("--estimators", nargs="+", default=ESTIMATORS, choices=ESTIMATORS)
    p.add_argument("--iters", type=int, default=3000, help="training iterations of every estimator (the budget)")
    p.add_argument("--parallel", type=int, default=4, help="trainings run at the same time")
    p.add_argument("--long-iters", type=int, default=0,
                   help="also train --long-estimator this long (its tau annealed over the whole run); 0 = skip")
    p.add_argument("--long-estimator", default="gumbel_st", choices=ESTIMATORS)
    p.add_argument("--num-samples", type=int, default=10000)
    p.add_argument("--doc", default=os.path.join(REPO, "docs", "discrete.md"))
    p.add_argument("--force", action="store_true", help="redo every step")
    p.add_argument("--note", action="append", default=[],
                   help="a sentence printed under the table (how the runs were made), saved in the json; repeatable")
    p.add_argument("--doc-only", action="store_true",
                   help="only rewrite the doc section from the saved docs/discrete/binary_mnist.json (no training)")
    p.add_argument("overrides", nargs="*", help="config overrides for every training (after --)")
    return p.parse_args(argv)


def binary_uint8(x):
    """uint8 MNIST [N, 1, 28, 28] binarized at 0.5: 0 or 255 (what the game does to reals)."""
    import torch

    return torch.where(x.float() / 255 > 0.5, 255, 0).to(torch.uint8)


def judge(clf, images, ref_moments) -> dict:
    """Classifier summary and FID of uint8 images [N, 1, 28, 28]."""
    import torch

    from ganscale.metrics import fidelity
    from ganscale.metrics.classes import class_summary

    with torch.no_grad():
        out = [clf(images[i:i + 1000]) for i in range(0, len(images), 1000)]
    logits = torch.cat([o["logits"] for o in out])
    feats = torch.cat([o["features"] for o in out])
    return {**class_summary(logits), "fid": fidelity.fid(ref_moments, feats)}


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.doc_only:
        saved = os.path.join(os.path.dirname(args.doc), "discrete", "binary_mnist.json")
        with open(saved) as f:
            results = json.load(f)
        if args.note:
            results["notes"] = args.note
            with open(saved, "w") as f:
                json.dump(results, f, indent=2)
        write_doc(args, results)
        return results
    import torch

    from ganscale.metrics import fidelity
    from ganscale.metrics.classifier import load_classifier, load_digits
    from ganscale.metrics.plots import image_grid, to_uint8
    from ganscale.train.restore import load_module

    pack_mnist(args.mnist, args.shards, args.force)
    clf_info = classifier(args.mnist, args.classifier, args.force, epochs=args.classifier_epochs)

    def run(job: tuple[str, int]) -> dict:
        est, iters = job
        overrides = [f"data.shards.urls={args.shards}", f"model.discrete.estimator={est}",
                     f"trainer.max_iters={iters}", "wandb.mode=disabled", *args.overrides]
        if iters == args.iters:
            return train(args.config, args.runs, f"binary-{est}", overrides, args.force)
        return train(args.config, args.runs, f"binary-{est}-{iters}",
                     [*overrides, f"model.discrete.tau_anneal_iters={iters}"], args.force)

    jobs = {est: (est, args.iters) for est in args.estimators}
    if args.long_iters:
        jobs[f"{args.long_estimator} ({args.long_iters} iterations)"] = (args.long_estimator, args.long_iters)
    with ThreadPoolExecutor(args.parallel) as pool:
        runs = dict(zip(jobs, pool.map(run, jobs.values())))

    clf = load_classifier(args.classifier).eval()
    n = args.num_samples
    train_x, _ = load_digits(args.mnist, "train")
    test_x, _ = load_digits(args.mnist, "test")
    with torch.no_grad():
        ref = torch.cat([clf(binary_uint8(train_x[i:i + 1000]))["features"] for i in range(0, n, 1000)])
    ref_moments = fidelity.feature_moments(ref)
    fig_dir = os.path.join(os.path.dirname(args.doc), "discrete")
    os.makedirs(fig_dir, exist_ok=True)
    results = {"floor": judge(clf, binary_uint8(test_x[:n]), ref_moments), "estimators": {}}
    nhwc = lambda t: t[:100].permute(0, 2, 3, 1).numpy()  # noqa: E731  (image_grid's layout)
    image_grid(nhwc(binary_uint8(test_x)), os.path.join(fig_dir, "binary_real.png"), nrow=10)
    for est, info in runs.items():
        module = load_module(info["run_dir"])
        samples = to_uint8(module.sample(n, seed=0))  # G_ema, binary in {-1, 1} -> {0, 255}
        r = judge(clf, samples, ref_moments)
        r.update(iterations=info["iterations"], figure=f"binary_{os.path.basename(info['run_dir'])[7:]}.png")
        results["estimators"][est] = r
        image_grid(nhwc(samples), os.path.join(fig_dir, r["figure"]), nrow=10)
        print(est, json.dumps({k: v for k, v in r.items() if k != "histogram"}), flush=True)
    results.update(iters=args.iters, long_iters=args.long_iters, num_samples=n, classifier=clf_info, config=portable(args.config),
                   recipe=recipe(args.config, args.overrides), notes=args.note,
                   overrides=args.overrides, machine=cpu_note())
    with open(os.path.join(fig_dir, "binary_mnist.json"), "w") as f:
        json.dump(portable(results), f, indent=2)
    write_doc(args, results)
    return results


def recipe(config: str, overrides: list[str]) -> str:
    """One sentence naming the nets, condition, batch and optimizers of `config` + `overrides`."""
    from ganscale.config.load import load_config

    c = load_config([config], overrides)
    m = c.model
    if m.arch == "mlp":
        nets = (f"MLP G ({m.mlp.G.depth}x{m.mlp.G.width}) and D ({m.mlp.D.depth}x{m.mlp.D.width})")
    else:
        d = getattr(m, m.arch)
        nets = f"{m.arch.upper()} G (G_ch {d.G_ch}, logits out) and D (D_ch {d.D_ch}, norm {d.D_norm})"
    cond = ("class-conditional G and D (labels of the fakes drawn uniformly; `data.shards.labels: true`)"
            if m.conditional and c.data.shards.labels else "unconditional G and D")
    opt = ", ".join(f"{k} lr {getattr(c.optim, k).lr:g}" for k in ("G", "D"))
    return (f"{nets}, {cond}, z_dim {m.z_dim}, batch {c.data.batch_size}, {c.loss.name} loss, Adam ({opt}), "
            f"G_ema decay {c.gan.ema.decay:g}, tau {m.discrete.tau_start:g} -> {m.discrete.tau_end:g}, "
            f"BGAN M = {m.discrete.bgan_samples}")


# Recipes measured before the current default (all `gumbel_st`, scored by `judge` below: 10,000
# samples at the end of a run, 5,000 at intermediate checkpoints). Kept here so the page that the
# benchmark rewrites still says what was tried and how it ended.
TRIED = [
    "MLP G and D (2x256), unconditional, G lr 5e-4, D lr 2e-4, 1500 iterations (the first default): "
    "7-8 classes, class KL 0.82-1.47 for the four estimators; `gumbel_st` at 4000 iterations: 10 classes, KL 0.72.",
    "DCGAN G_ch 32 / D_ch 32 (D BatchNorm), logits out, unconditional, lr 2e-4 both, 1500 iterations: "
    "10 classes, KL 0.574 (digits 0, 1 and 6 under 0.3% each).",
    "the same with no D norm, R1 (gamma 1, every 4 iterations), minibatch stddev and G_ema decay 0.999: "
    "at 1000 iterations one class, speckle noise (stopped).",
    "DCGAN G_ch 32 / D_ch 32 (D BatchNorm), class-conditional (label input, conditional BN, projection D), "
    "lr 2e-4 both: KL 1.04 at 500 iterations, 0.40 at 1000, 0.258 at 1500.",
    "DCGAN G_ch 32 / D_ch 16, class-conditional, G lr 5e-4, D lr 2e-4 (the nets and optimizers of the current default): "
    "KL 0.259 at 500 iterations, 0.312 at 1000, 0.250 at 1500, 0.259 at 2000.",
    "The shipped recipe (`gumbel`, DCGAN G_ch 32 / D_ch 16, logits out, 3000 iterations) **unconditional** "
    "(`python benchmarks/binary_mnist.py --estimators gumbel -- model.conditional=false data.shards.labels=false`, "
    "2026-11-29): 10 classes, class KL 0.284, confidence 0.801, FID 441. The relaxed estimator halves the KL of "
    "the best earlier unconditional run (`gumbel_st`, 0.574), still 6x the bar.",
    "Unconditional remedies on that recipe (2026-11-30, one seed each, the same classifier and scoring; "
    "`python benchmarks/binary_mnist.py --estimators gumbel --iters N -- model.conditional=false "
    "data.shards.labels=false ...`): PacGAN packing 2 (`model.remedies.pack=2`), 3000 iterations: KL 0.499, "
    "FID 571 (worse). Minibatch discrimination in D (`model.remedies.minibatch_discrimination.enabled=true "
    "...num_kernels=50 ...kernel_dim=5`): KL 0.157 at 3000 iterations (FID 240), 0.105 at 6000 (FID 178), "
    "**0.070 at 12,000** (confidence 0.873, FID 149; class shares 0.061 0.042 0.112 0.163 0.113 0.101 0.049 "
    "0.125 0.115 0.119 for digits 0-9), and resumed from 12,000 to 24,000: 0.072 (confidence 0.879, FID 132; "
    "0.051 0.051 0.104 0.154 0.127 0.122 0.044 0.121 0.109 0.118). FID still falls; the class balance does not "
    "(3 over-represented; 0, 1 and 6 under). With twice the kernels (`...num_kernels=100`), 12,000 iterations: "
    "**KL 0.061**, confidence 0.872, FID 138; class shares 0.058 0.046 0.106 0.144 0.118 0.107 0.051 0.114 0.126 "
    "0.128: the best unconditional run, still 1.2x the bar.",
    "More kernels, 12,000 iterations each (2026-11-30, session 11; same command and scoring): 200 kernels "
    "(`...num_kernels=200`): KL 0.0525 on seed 0 (confidence 0.881, FID 119.9; class shares 0.075 0.045 0.093 "
    "0.145 0.132 0.107 0.056 0.122 0.122 0.103) and **0.0456** on seed 1 (`seed=1`; confidence 0.880, FID 131.5; "
    "0.079 0.054 0.086 0.133 0.120 0.116 0.052 0.139 0.109 0.111); 400 kernels (`...num_kernels=400`), seed 0: "
    "**KL 0.0438**, confidence 0.887, FID 109.6 (0.070 0.052 0.092 0.144 0.114 0.111 0.061 0.130 0.117 0.109). "
    "100 kernels with a D twice as wide (`model.dcgan.D_ch=32`): 0.0785 (worse). The KL falls as the kernels "
    "double (50: 0.070, 100: 0.061, 200: 0.046-0.053, 400: 0.044); the digit 3 stays over-represented and 1 and "
    "6 under.",
]


def write_doc(args, r: dict) -> None:
    same = {e: v for e, v in r["estimators"].items() if v["iterations"] == r["iters"]}
    best = min(same, key=lambda e: same[e]["kl_uniform"])
    b = r["estimators"][best]
    passed = b["classes_seen"] == 10 and b["kl_uniform"] <= BAR_KL
    lines = [
        SECTION, "",
        "G outputs binary 28x28 images (each pixel a Bernoulli draw from G's logits); real images are "
        f"MNIST binarized at 0.5. Every estimator trains the same nets with the same recipe and budget, "
        f"**{r['iters']} iterations**: {r['recipe']} (`{r['config']}`"
        + (f" with `{' '.join(r['overrides'])}`" if r['overrides'] else "")
        + f"). Measured with `python benchmarks/binary_mnist.py --iters {r['iters']} "
        f"--long-iters {r['long_iters']}` on "
        f"{r['machine']}; the digit classifier (`ganscale classifier train`, {r['classifier']['epochs']} "
        f"epochs) has test accuracy {r['classifier']['test_accuracy']:.4f}.", "",
        f"{r['num_samples']:,} samples of G_ema each: **classes** = digits the classifier predicts at "
        "least once, **KL** = KL(class histogram || uniform) in nats, **confidence** = mean top softmax "
        f"probability, **FID** in the classifier's 128-d feature space against {r['num_samples']:,} "
        "binarized train images.", "",
        "| estimator | iterations | classes | class KL | confidence | FID |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for est, e in r["estimators"].items():
        lines.append(f"| `{est}` | {e['iterations']} | {e['classes_seen']} | {e['kl_uniform']:.4f} | "
                     f"{e['confidence']:.3f} | {e['fid']:.2f} |")
    f = r["floor"]
    lines += [
        f"| binarized MNIST test images (floor) | | {f['classes_seen']} | {f['kl_uniform']:.4f} | "
        f"{f['confidence']:.3f} | {f['fid']:.2f} |", "",
        f"**Bar** (all 10 classes and class KL <= {BAR_KL} for the best estimator): best is `{best}` with "
        f"{b['classes_seen']} classes and KL {b['kl_uniform']:.4f}: **{'met' if passed else 'not met'}** at "
        "this budget.", "",
        *[line for note in r.get("notes", []) for line in (note, "")],
        "Class histograms (share of samples per predicted digit 0..9):", "",
        "| estimator | " + " | ".join(str(c) for c in range(10)) + " |",
        "| --- |" + " --- |" * 10,
    ]
    for est, e in r["estimators"].items():
        lines.append(f"| `{est}` | " + " | ".join(f"{v:.3f}" for v in e["histogram"]) + " |")
    lines += ["", "What was tried on the way to this recipe and without the labels (the same classifier and scoring):", ""]
    lines += [f"- {t}" for t in TRIED]
    lines += ["", "Samples (first 100 of each G_ema; real binarized test digits first):", "",
              "![real](discrete/binary_real.png)"]
    lines += [f"![{est}](discrete/{e['figure']})" for est, e in r["estimators"].items()]
    write_section(args.doc, SECTION, "\n".join(lines) + "\n")


HEADER = """# Discrete outputs

A generator whose samples are discrete (binary pixels, tokens) has no gradient through its
sampling step. `game.name=discrete` (ganscale/games/discrete.py) trains one through a
discriminator with one of four estimators, chosen by one switch, `model.discrete.estimator`:

| estimator | D sees | G's gradient |
| --- | --- | --- |
| `gumbel` | the binary-concrete relaxation sigmoid((l + n) / tau), n ~ Logistic | through the relaxation; tau annealed geometrically from `tau_start` to `tau_end` over `tau_anneal_iters` |
| `gumbel_st` | the exact {0, 1} draw 1[l + n > 0] | the relaxation's (straight-through) |
| `reinforce` | the exact draw | score function (r - b) grad log p(x), r = log D(x) (minus G's per-sample loss), b a moving average (`baseline_decay`) of the global batch's mean reward |
| `bgan` | the exact draws, M per z | boundary-seeking GAN (Hjelm et al. 2018): -sum_m w_m grad log p(x_m given z), w = D/(1-D) normalised over the M (`bgan_samples`) |

```bash
ganscale data pack ../shared/data/mnist data/mnist-shards
ganscale train configs/mnist/binary.yaml model.discrete.estimator=bgan
ganscale sample runs/<run> --num 100 --out grid.png          # binary images
python benchmarks/binary_mnist.py                            # the table below
```

The estimators are pure functions in `ganscale/nets/discrete/estimators.py`, tested against hand
computations in `tests/test_discrete.py` (Gumbel-softmax argmax frequencies = softmax
probabilities, REINFORCE's mean = the exact gradient on an enumerable toy, BGAN weights by hand);
`tests/dist_worker.py` checks that REINFORCE and BGAN under DDP, ZeRO-1 and ZeRO-2 on two ranks
equal one process with the global batch.

"""


def write_section(doc: str, section: str, body: str) -> None:
    """Replace `section` (up to the next `## `) in `doc`, creating the page with HEADER if needed."""
    text = open(doc).read() if os.path.isfile(doc) else HEADER
    start = text.find(section + "\n")
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + body
    else:
        end = text.find("\n## ", start + len(section))
        text = text[:start] + body + ("\n" + text[end + 1:] if end >= 0 else "")  # a blank line before the next
    with open(doc, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
