"""One measurement of the GPU suite (benchmarks/gpu_suite.sh calls it once per setting), and the
report that collects them into docs/gpu.md.

    python benchmarks/gpu_bench.py run --name bf16 --json out/bf16.json trainer.precision=bf16-mixed
    python benchmarks/gpu_bench.py run --name smoke --device cpu --iters 2 --warmup 1 --json s.json \\
        model.biggan.G_ch=4 model.biggan.D_ch=4 data.batch_size=2
    python benchmarks/gpu_bench.py report out/*.json --out docs/gpu.md

`run` trains configs/imagenet/biggan128.yaml (or --config) through `ganscale train`'s own code path
(ganscale.train.run.main: Trainer, strategy, per-player precision, callbacks) on one device, fed from
in-memory random images of the config's shape (the data pipeline is measured by
benchmarks/data_loader.py), and writes one JSON: iterations/s and images/s between iteration
--warmup and the last one (real images consumed: batch x n_disc per iteration), the peak GPU memory,
whether every loss and gradient stayed finite (skipped steps, last losses), and the settings. A
failure is recorded in the JSON (error) instead of stopping the suite.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import REPO, memory_datamodule, text_encoder_file, timed_run  # noqa: E402

DEFAULT_CONFIG = os.path.join(REPO, "configs", "imagenet", "biggan128.yaml")


def bench(args, overrides: list[str]) -> dict:
    import torch

    from ganscale.config import load_config

    cuda = args.device == "cuda"
    total = args.warmup + args.iters + 1  # the window ends as iteration warmup + iters starts
    with tempfile.TemporaryDirectory() as root:
        ov = [f"trainer.max_iters={total}", "trainer.devices=1", "trainer.num_nodes=1",
              f"trainer.accelerator={'gpu' if cuda else 'cpu'}", f"run.root={root}", "run.name=bench",
              "wandb.mode=disabled", "trainer.progress_bar=false", "eval.metrics=[]", "data.shards.urls=unused",
              "gan.ema.start_iter=0", "trainer.ckpt_every=0", "trainer.eval_every=0", "trainer.plot_every=0",
              # CPU smoke runs share a CPU: one intra-op thread (spinning OpenMP threads stall there)
              *([] if cuda else ["trainer.num_threads=1"]), *overrides]
        text = None
        if args.captions:
            # a text-to-image game (game.condition=text): captioned batches and an encoder file of the
            # config's text dimension (its trained weights do not change the cost of a step)
            base = load_config([args.config], ov)
            max_len = 18
            path = text_encoder_file(os.path.join(root, "encoder.safetensors"), getattr(base.model, base.model.arch).text_dim,
                                     max_len=max_len)
            ov.append(f"game.text.encoder={path}")
            text = (5000, max_len)
        cfg = load_config([args.config], ov)
        cfg.config_name = args.name
        shape = (3, args.resolution, args.resolution)
        dm = memory_datamodule(cfg, shape, 0 if text else args.num_classes, text=text)
        sync = torch.cuda.synchronize if cuda else (lambda: None)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        clock, run = timed_run(cfg, (args.warmup, args.warmup + args.iters), sync, datamodule=dm, evaluate=False)
        seconds = clock.wall
        m = run.module
        stats = {k: float(v) for k, v in m.stats.items()}
        images = cfg.data.batch_size * cfg.gan.n_disc * args.iters
        return {
            "name": args.name, "device": torch.cuda.get_device_name() if cuda else "cpu",
            "precision": cfg.trainer.precision, "compile": cfg.trainer.compile, "strategy": cfg.strategy.name,
            "backend": cfg.strategy.process_group_backend or ("nccl" if cuda else "gloo"),
            "arch": cfg.model.arch, "G_ch": width(cfg, "G"), "D_ch": width(cfg, "D"), "batch": cfg.data.batch_size,
            "n_disc": cfg.gan.n_disc, "iters": args.iters, "warmup": args.warmup, "seconds": seconds,
            "it_per_s": args.iters / seconds if seconds > 0 else 0.0,
            "images_per_s": images / seconds if seconds > 0 else 0.0,
            "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
            "skipped": dict(m.num_skipped), "iterations_done": m.iteration,
            "finite": all(math.isfinite(v) for v in stats.values()) and not any(m.num_skipped.values()),
            "losses": {k: v for k, v in stats.items() if k.startswith("loss/")},
        }


def width(cfg, net: str):
    """The width setting of `net` in the config's family (BigGAN's G_ch/D_ch, DF-GAN's nf for both)."""
    family = getattr(cfg.model, cfg.model.arch)
    return getattr(family, f"{net}_ch", getattr(family, "nf", None))


def cmd_run(args, overrides) -> int:
    t0 = time.time()
    try:
        out = bench(args, overrides)
    except Exception as e:  # noqa: BLE001 - the suite records the failure and goes on
        out = {"name": args.name, "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-3000:]}
    out["wall_s"] = time.time() - t0
    out["overrides"] = overrides
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(out, f, indent=2)
    print(json.dumps({k: v for k, v in out.items() if k != "traceback"}), flush=True)
    return 0 if "error" not in out else 1


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def cmd_report(args) -> int:
    rows = []
    for path in args.results:
        with open(path) as f:
            rows.append(json.load(f))
    lines = [args.title, "", args.header.strip(), "",
             "| setting | precision | compile | strategy | width G/D | batch x n_disc | images/s | it/s | peak memory GiB | finite | wall s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    notes = []
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['name']} | failed | | | | | | | | | {r.get('wall_s', 0):.0f} |")
            notes.append(f"- {r['name']}: {r['error']}")
            continue
        lines.append(
            f"| {r['name']} | {r['precision']} | {r['compile']} | {r['strategy']} ({r['backend']}) | "
            f"{r['G_ch']}/{r['D_ch']} | {r['batch']} x {r['n_disc']} | {r['images_per_s']:.1f} | {r['it_per_s']:.2f} | "
            f"{_fmt(r['peak_mem_gib'], '.2f')} | {'yes' if r['finite'] else 'NO'} ({r['iterations_done']} it, "
            f"skipped {r['skipped']['D']}/{r['skipped']['G']}) | {r['wall_s']:.0f} |")
    for skipped in args.skipped or []:
        lines.append(f"| {skipped} | skipped | | | | | | | | | |")
    if notes:
        lines += ["", "Failures:", "", *notes]
    text = "\n".join(lines) + "\n"
    with open(args.out, "w") as f:
        f.write(text)
    print(text)
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="one setting -> one JSON; trailing key=value are config overrides")
    r.add_argument("--name", required=True)
    r.add_argument("--json", required=True)
    r.add_argument("--config", default=DEFAULT_CONFIG)
    r.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    r.add_argument("--iters", type=int, default=20, help="timed iterations")
    r.add_argument("--warmup", type=int, default=5, help="untimed iterations first (compilation, allocator)")
    r.add_argument("--resolution", type=int, default=128)
    r.add_argument("--num-classes", type=int, default=1000)
    r.add_argument("--captions", action="store_true",
                   help="captioned batches and a text encoder file (DF-GAN, StackGAN: game.condition=text)")
    q = sub.add_parser("report", help="JSONs -> markdown table")
    q.add_argument("results", nargs="+")
    q.add_argument("--out", required=True)
    q.add_argument("--title", default="# GPU suite")
    q.add_argument("--header", default="")
    q.add_argument("--skipped", action="append", help="a setting the suite skipped, with the reason")
    args, rest = p.parse_known_args(argv)
    if args.cmd == "run":
        return cmd_run(args, rest)
    if rest:
        p.error(f"unrecognized arguments: {' '.join(rest)}")
    return cmd_report(args)


if __name__ == "__main__":
    sys.exit(main())
