"""The MNIST quality bar, in one command: class-conditional GAN trained from packed shards on the
CPU, judged by a digit classifier that ganscale trains itself (>= 99% test accuracy).

    python benchmarks/mnist_quality.py                      # DCGAN config, writes docs/mnist.md
    python benchmarks/mnist_quality.py --config configs/mnist/sngan.yaml --name mnist-sngan -- trainer.max_iters=3000

Steps (each skipped when its output exists; --force redoes them):
1. `ganscale data pack ../shared/data/mnist data/mnist-shards`            (the train split)
2. `ganscale classifier train --data ../shared/data/mnist --out classifiers/mnist.pt`
3. `ganscale train CONFIG data.shards.urls=... eval.classifier_path=...`  (periodic eval on G_ema)
4. G_ema against 10,000 real train images in the classifier's feature space: FID, KID, IS,
   precision/recall (k=3); the share of class-c samples the classifier labels c, per class
   (1,000 samples each); the same metrics for 10,000 MNIST *test* images as the floor.
5. sample grids and docs/mnist.md (+ docs/mnist/results.json).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _mnist_common import REPO, classifier, cpu_note, default_mnist, pack_mnist, portable, train  # noqa: E402

sys.path.insert(0, REPO)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mnist", default=default_mnist(), help="folder of the MNIST IDX files")
    p.add_argument("--config", default=os.path.join(REPO, "configs", "mnist", "dcgan.yaml"))
    p.add_argument("--shards", default=os.path.join(REPO, "data", "mnist-shards"))
    p.add_argument("--classifier", default=os.path.join(REPO, "classifiers", "mnist.pt"))
    p.add_argument("--runs", default=os.path.join(REPO, "runs", "benchmarks"))
    p.add_argument("--name", default="mnist-dcgan", help="run name (and prefix of the doc figures)")
    p.add_argument("--num-samples", type=int, default=10000, help="generated samples for FID/KID/IS/PR")
    p.add_argument("--per-class", type=int, default=1000, help="samples per class for the accuracy table")
    p.add_argument("--doc", default=os.path.join(REPO, "docs", "mnist.md"))
    p.add_argument("--force", action="store_true", help="redo every step")
    p.add_argument("overrides", nargs="*", help="config overrides for training (after --)")
    return p.parse_args(argv)


def test_split_sampler(mnist: str, size: int = 0):
    """A 'generator' returning MNIST test images of the requested classes, in order: the floor.
    `size` > 0: resized as `ganscale data pack --resize size` resizes the training images."""
    import torch

    from ganscale.metrics.classifier import load_digits

    x, y_all = load_digits(mnist, "test")
    if size and size != x.shape[-1]:
        import numpy as np
        from PIL import Image

        from ganscale.data.pack.encode import resize_shorter

        x = torch.from_numpy(np.stack([np.asarray(resize_shorter(Image.fromarray(im[0].numpy()), size))
                                       for im in x]))[:, None]
    x = x.float() / 127.5 - 1
    pools = [torch.nonzero(y_all == c).flatten() for c in range(10)]
    used = [0] * 10

    def sample(n, seed=0, y=None, truncation=None):
        idx = []
        for c in y.tolist():
            pool = pools[c]
            idx.append(int(pool[used[c] % len(pool)]))
            used[c] += 1
        return x[idx]

    return sample


def per_class_accuracy(module, clf, per_class: int) -> list[float]:
    import torch

    from ganscale.metrics.plots import to_uint8

    accs = []
    for c in range(10):
        x = module.sample(per_class, seed=1000 + c, y=torch.full((per_class,), c, dtype=torch.long))
        pred = clf(to_uint8(x))["logits"].argmax(1)
        accs.append(float((pred == c).float().mean()))
    return accs


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from ganscale.config import load_config
    from ganscale.data import build_datamodule
    from ganscale.metrics.classifier import load_classifier
    from ganscale.metrics.evaluator import ImageEvaluator
    from ganscale.metrics.plots import image_grid, to_uint8_images
    from ganscale.train.restore import load_module

    t_start = time.perf_counter()
    pack_mnist(args.mnist, args.shards, args.force)
    clf_info = classifier(args.mnist, args.classifier, args.force)
    if clf_info["test_accuracy"] < 0.99:
        print(f"WARNING: the classifier reaches {clf_info['test_accuracy']:.4f} < 0.99 on the test split")
    overrides = [f"data.shards.urls={args.shards}", f"eval.classifier_path={args.classifier}", *args.overrides]
    tr = train(args.config, args.runs, args.name, overrides, args.force)

    module = load_module(tr["run_dir"])
    cfg = load_config([args.config], overrides + [f"eval.num_samples={args.num_samples}", "eval.num_reference=10000",
                                                  "eval.pr_num_samples=10000",
                                                  "eval.metrics=[fid,kid,is,pr,class_acc]"])
    dm = build_datamodule(cfg)
    ev = ImageEvaluator(cfg, dm.info, dm, run_dir=tr["run_dir"])
    with torch.no_grad():
        gan = ev.evaluate(lambda n, **kw: module.sample(n, batch=cfg.eval.batch_size, **kw))
        real = ev.evaluate(test_split_sampler(args.mnist))
        clf = load_classifier(args.classifier)
        accs = per_class_accuracy(module, clf, args.per_class)

    fig_dir = os.path.join(os.path.dirname(args.doc), "mnist")
    os.makedirs(fig_dir, exist_ok=True)
    y = torch.arange(100) % 10  # column c holds class c
    grid = os.path.join(fig_dir, f"{args.name}_samples.png")
    image_grid(to_uint8_images(module.sample(100, seed=7, y=y)), grid, nrow=10)
    real_grid = os.path.join(fig_dir, "real_test.png")
    image_grid(to_uint8_images(test_split_sampler(args.mnist)(100, y=y)), real_grid, nrow=10)

    history = [json.loads(line) for line in open(os.path.join(tr["run_dir"], "metrics.jsonl"))]
    results = {
        "config": os.path.relpath(args.config, REPO), "overrides": args.overrides, "train": tr,
        "classifier": clf_info, "gan": gan, "real_test_split": real, "per_class_accuracy": accs,
        "mean_class_accuracy": sum(accs) / len(accs), "history": history, "cpu": cpu_note(),
        "benchmark_seconds": round(time.perf_counter() - t_start, 1),
    }
    with open(os.path.join(fig_dir, f"{args.name}_results.json"), "w") as f:
        json.dump(portable(results), f, indent=2)
    write_doc(args, results, grid, real_grid)
    print(json.dumps({k: results[k] for k in ("gan", "real_test_split", "mean_class_accuracy")}, indent=2))
    print(f"wrote {args.doc}")
    return 0


def cpu_time(train_info: dict) -> str:
    cpu = train_info.get("cpu_seconds")
    return f", {cpu / 60:.1f} min of CPU time" if cpu else ""


def write_doc(args, r: dict, grid: str, real_grid: str) -> None:
    g, real, tr = r["gan"], r["real_test_split"], r["train"]
    rel = lambda p: os.path.relpath(p, os.path.dirname(args.doc))  # noqa: E731
    mean_acc = r["mean_class_accuracy"]
    lines = [
        "# MNIST: class-conditional GAN on the CPU, judged by a digit classifier",
        "",
        "Produced by one command (the steps are skipped when their outputs exist):",
        "",
        "```bash",
        f"python benchmarks/mnist_quality.py --config {r['config']} --name {args.name}"
        + (" -- " + " ".join(args.overrides) if args.overrides else ""),
        "```",
        "",
        f"It packs the MNIST train split into shards, trains the digit classifier "
        f"(`ganscale classifier train`, {r['classifier']['epochs']} epoch(s): "
        f"**{100 * r['classifier']['test_accuracy']:.2f}%** on the 10,000 test images), trains "
        f"`{r['config']}` from the shards ({tr['iterations']} iterations in {tr['seconds'] / 60:.1f} min wall "
        f"time{cpu_time(tr)}; {r['cpu']}), then evaluates G_ema.",
        "",
        "## Result",
        "",
        f"Quality bar: the classifier labels **{100 * mean_acc:.2f}%** of class-c samples as c, averaged over "
        f"the 10 classes (10 x {args.per_class} samples; "
        f"the bar is >= 97%: **{'met' if mean_acc >= 0.97 else 'NOT met'}**).",
        "",
        "| class | " + " | ".join(str(c) for c in range(10)) + " |",
        "|---|" + "---|" * 10,
        "| accuracy | " + " | ".join(f"{100 * a:.1f}" for a in r["per_class_accuracy"]) + " |",
        "",
        "Metrics in the classifier's feature space (128-d penultimate layer; InceptionV3 features mean "
        f"little on digits), {g['num_samples']:,} generated samples (equally many per class) against "
        f"{g['num_reference']:,} train images. "
        "The MNIST test split, scored the same way, is the floor a perfect generator would reach:",
        "",
        "| | FID | KID | IS | precision | recall | class accuracy |",
        "|---|---|---|---|---|---|---|",
        f"| G_ema | {g['fid']:.2f} | {g['kid']:.3f} ± {g['kid_std']:.3f} | {g['is']:.2f} | {g['precision']:.3f} | "
        f"{g['recall']:.3f} | {100 * g['class_acc']:.2f}% |",
        f"| MNIST test images | {real['fid']:.2f} | {real['kid']:.3f} ± {real['kid_std']:.3f} | {real['is']:.2f} | "
        f"{real['precision']:.3f} | {real['recall']:.3f} | {100 * real['class_acc']:.2f}% |",
        "",
        "KID is reported in the raw units of these features (the polynomial kernel on 128-d "
        "activations), so it is comparable between rows, not to Inception KIDs. Precision/recall: "
        "k-NN manifolds with k=3 (Kynkäänniemi et al. 2019).",
        "",
        "During training (`trainer.eval_every`, "
        f"{r['history'][0]['num_samples'] if r['history'] else '?'} samples):",
        "",
        "| iteration | FID | precision | recall | class accuracy |",
        "|---|---|---|---|---|",
    ]
    for h in r["history"]:
        lines.append(f"| {h['iter']} | {h.get('fid', float('nan')):.2f} | {h.get('precision', float('nan')):.3f} | "
                     f"{h.get('recall', float('nan')):.3f} | {100 * h.get('class_acc', float('nan')):.2f}% |")
    lines += [
        "",
        "## Samples",
        "",
        "G_ema, column c = class c (left), and MNIST test images arranged the same way (right):",
        "",
        f"![G_ema samples]({rel(grid)}) ![MNIST test images]({rel(real_grid)})",
        "",
        "## Reproduce step by step",
        "",
        "```bash",
        "ganscale data pack ../shared/data/mnist data/mnist-shards",
        "ganscale classifier train --data ../shared/data/mnist --out classifiers/mnist.pt",
        f"ganscale train {r['config']} data.shards.urls=data/mnist-shards eval.classifier_path=classifiers/mnist.pt",
        "ganscale eval runs/<run> eval.num_samples=10000",
        "ganscale sample runs/<run> --num 100 --class 0,1,2,3,4,5,6,7,8,9 --nrow 10 --out grid.png",
        "```",
        "",
        f"All numbers: `docs/mnist/{args.name}_results.json`.",
        "",
    ]
    with open(args.doc, "w") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
