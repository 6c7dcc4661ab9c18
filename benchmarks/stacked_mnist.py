"""Stacked MNIST mode counting (1,000 modes), in one command, beside the published rows.

    python benchmarks/stacked_mnist.py                                  # writes docs/stacked_mnist.md
    python benchmarks/stacked_mnist.py -- trainer.max_iters=2000        # shorter
    python benchmarks/stacked_mnist.py --config configs/mnist/stacked_biggan32.yaml --name stacked-mnist-biggan32

Steps (each skipped when its output exists; --force redoes them):
1. pack 60,000 Stacked-MNIST samples (three train digits as R, G, B; seeded) into data/stacked-mnist-shards
2. the digit classifier (`ganscale classifier train`, shared with benchmarks/mnist_quality.py)
3. `ganscale train CONFIG` (configs/mnist/stacked_dcgan.yaml, or stacked_biggan32.yaml; periodic
   evaluations: modes and KL)
4. 26,000 samples of the final G (no EMA in this protocol): each channel classified, the digit
   triple is the mode; modes with at least one sample, and KL(mode histogram || uniform).
   The same count on 26,000 real stacked samples is the floor.
5. docs/stacked_mnist.md gathers every run's docs/mnist/stacked-mnist-*_results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _mnist_common import REPO, classifier, cpu_note, default_mnist, portable, train  # noqa: E402
from mnist_quality import cpu_time  # noqa: E402

sys.path.insert(0, REPO)

PUBLISHED = [  # (model, modes, KL): Metz et al. 2017 (D of 1/4 size) and PacGAN (Lin et al. 2018)
    ("DCGAN", "99", "3.40"),
    ("Unrolled GAN, 10 steps", "817", "1.43"),
    ("PacDCGAN", "1000", "0.06"),
]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mnist", default=default_mnist())
    p.add_argument("--config", default=os.path.join(REPO, "configs", "mnist", "stacked_dcgan.yaml"))
    p.add_argument("--shards", default=os.path.join(REPO, "data", "stacked-mnist-shards"))
    p.add_argument("--num-stacked", type=int, default=60000, help="stacked samples to pack")
    p.add_argument("--classifier", default=os.path.join(REPO, "classifiers", "mnist.pt"))
    p.add_argument("--runs", default=os.path.join(REPO, "runs", "benchmarks"))
    p.add_argument("--name", default="stacked-mnist-dcgan")
    p.add_argument("--num-samples", type=int, default=26000, help="samples for counting modes")
    p.add_argument("--doc", default=os.path.join(REPO, "docs", "stacked_mnist.md"))
    p.add_argument("--force", action="store_true")
    p.add_argument("overrides", nargs="*", help="config overrides for training (after --)")
    return p.parse_args(argv)


def pack_stacked(mnist: str, out: str, num: int, force: bool) -> None:
    from ganscale.data.pack.stacked_mnist import stacked_mnist_source
    from ganscale.data.pack.writer import PackOptions, pack

    if os.path.isfile(os.path.join(out, "manifest.json")) and not force:
        print(f"shards: {out} (exists)")
        return
    m = pack(stacked_mnist_source(mnist, num, seed=0), out, PackOptions(overwrite=True))
    print(f"packed {m.num_samples} stacked samples into {len(m.shards)} shards in {out}")


def count_modes(batches, extractor) -> dict:
    import torch

    from ganscale.metrics.plots import to_uint8
    from ganscale.metrics.fidelity import mode_coverage

    logits = torch.cat([extractor(to_uint8(x))["channel_logits"] for x in batches])
    modes, kl, num_modes = mode_coverage(logits)
    return {"modes": modes, "kl": kl, "num_modes": num_modes, "num_samples": len(logits)}


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from ganscale.config import load_config
    from ganscale.data import build_datamodule
    from ganscale.metrics.extractors import build_extractor
    from ganscale.metrics.plots import image_grid, to_uint8_images
    from ganscale.train.restore import load_module

    t_start = time.perf_counter()
    pack_stacked(args.mnist, args.shards, args.num_stacked, args.force)
    clf_info = classifier(args.mnist, args.classifier, args.force)
    overrides = [f"data.shards.urls={args.shards}", f"eval.classifier_path={args.classifier}", *args.overrides]
    tr = train(args.config, args.runs, args.name, overrides, args.force)

    module = load_module(tr["run_dir"])
    cfg = load_config([args.config], overrides)
    extractor = build_extractor(cfg.eval)
    n, b = args.num_samples, 500
    with torch.no_grad():
        gan = count_modes((module.sample(min(b, n - s), seed=s) for s in range(0, n, b)), extractor)
        dm = build_datamodule(cfg)
        real_batches, seen = [], 0
        for batch in dm.reference_batches(b):
            real_batches.append(batch["x"][: n - seen])
            seen += len(real_batches[-1])
            if seen >= n:
                break
        real = count_modes(real_batches, extractor)

    fig_dir = os.path.join(os.path.dirname(args.doc), "mnist")
    os.makedirs(fig_dir, exist_ok=True)
    grid = os.path.join(fig_dir, f"{args.name}_samples.png")
    image_grid(to_uint8_images(module.sample(64, seed=3)), grid, nrow=8)
    history = [json.loads(line) for line in open(os.path.join(tr["run_dir"], "metrics.jsonl"))]
    results = {"config": os.path.relpath(os.path.abspath(args.config), REPO), "overrides": args.overrides, "train": tr,
               "classifier": clf_info, "gan": gan, "real": real, "history": history, "cpu": cpu_note(),
               "benchmark_seconds": round(time.perf_counter() - t_start, 1)}
    with open(os.path.join(fig_dir, f"{args.name}_results.json"), "w") as f:
        json.dump(portable(results), f, indent=2)
    write_doc(args.doc)
    print(json.dumps({"gan": gan, "real": real}, indent=2))
    print(f"wrote {args.doc}")
    return 0


MODELS = {"dcgan": "unconditional DCGAN, D with 1/4 of G's width (the reduced-D setting of the published rows), "
                   "non-saturating loss, Adam 2e-4 (0.5, 0.999), batch 64",
          "biggan": "unconditional BigGAN-32 (32 channels per stage; hinge loss, 2 D steps per G step, Adam 2e-4 "
                    "(0, 0.999), spectral norm, orthogonal regularisation, self-attention, hierarchical z), batch 64, "
                    "the digits resized to 32 px"}


def _arch(r: dict) -> str:
    return "biggan" if "biggan" in r["config"] else "dcgan"


def _command(r: dict) -> str:
    cmd = "python benchmarks/stacked_mnist.py"
    if r["name"] != "stacked-mnist-dcgan":
        cmd += f" --config {r['config']} --name {r['name']}"
    return cmd + (" -- " + " ".join(r["overrides"]) if r["overrides"] else "")


def write_doc(doc: str) -> None:
    """`doc` (docs/stacked_mnist.md) from every run's docs/mnist/stacked-mnist-*_results.json."""
    import glob

    fig_dir = os.path.join(os.path.dirname(doc), "mnist")
    runs = [dict(json.load(open(f)), name=os.path.basename(f)[: -len("_results.json")])
            for f in sorted(glob.glob(os.path.join(fig_dir, "stacked-mnist-*_results.json")))]
    if not runs:
        return
    r0 = runs[0]
    lines = [
        "# Stacked MNIST: counting modes",
        "",
        "Three MNIST digits drawn independently form the R, G and B channels of a 28x28 image, so the "
        "data has 1,000 modes (digit triples). A generator's samples are assigned to modes by "
        "classifying each channel with ganscale's digit classifier (each run's accuracy on the MNIST "
        "test split below); we report the modes "
        f"that get at least one of {r0['gan']['num_samples']:,} samples and KL(mode histogram || uniform). "
        "Each run scores its final G (no EMA in this protocol).",
        "",
        "```bash",
        *[_command(r) for r in runs],
        "```",
        "",
    ]
    for r in runs:
        tr = r["train"]
        lines += [f"- `{r['name']}` (`{r['config']}`): {MODELS[_arch(r)]}. Trained {tr['iterations']} iterations "
                  f"in {tr['seconds'] / 60:.1f} min wall time on the CPU{cpu_time(tr)} ({r['cpu']}); digit "
                  f"classifier {100 * r['classifier']['test_accuracy']:.2f}%."]
    lines += [
        "",
        "| model | modes (of 1,000) | KL | source |",
        "|---|---|---|---|",
    ]
    lines += [f"| ganscale {'BigGAN-32' if _arch(r) == 'biggan' else 'DCGAN'}, {r['train']['iterations']} iterations "
              f"(`{r['name']}`) | {r['gan']['modes']} | {r['gan']['kl']:.2f} | measured here |" for r in runs]
    lines += [f"| real stacked samples | {r0['real']['modes']} | {r0['real']['kl']:.3f} | measured here (the floor) |"]
    lines += [f"| {m} | {modes} | {kl} | published (Metz et al. 2017; Lin et al. 2018) |" for m, modes, kl in PUBLISHED]
    lines += [
        "",
        "The published rows come from runs of tens of thousands of iterations on GPUs with the "
        "architectures of those papers; ours is what the CPU allowed, so the rows are not a like-for-like "
        "comparison of the methods. A mode count says nothing about whether the samples look like "
        "digits: every sample is assigned a triple, however poor, so read it together with precision "
        "and recall (k-NN manifolds in the classifier's feature space, against real stacked samples). "
        "During training (`trainer.eval_every`):",
        "",
        "| run | iteration | modes | KL | FID (classifier features) | precision | recall |",
        "|---|---|---|---|---|---|---|",
    ]
    nan = float("nan")
    for r in runs:
        lines += [f"| `{r['name']}` | {h['iter']} | {h.get('modes', '-')} | {h.get('modes_kl', nan):.2f} | "
                  f"{h.get('fid', nan):.1f} | {h.get('precision', nan):.3f} | {h.get('recall', nan):.4f} |"
                  for h in r["history"]]
    lines += [""]
    for r in runs:
        lines += [f"`{r['name']}`:", "", f"![samples](mnist/{r['name']}_samples.png)", ""]
    lines += ["All numbers: " + ", ".join(f"`docs/mnist/{r['name']}_results.json`" for r in runs) + ".", ""]
    with open(doc, "w") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
