"""`ganscale eval RUN_DIR_OR_CHECKPOINT [key=value ...] [--out FILE.json]`: image metrics of a
trained G_ema (FID, KID, IS, precision/recall, class accuracy; see `eval.*` in the config), or
the game's own metrics when it defines them (ssl_gan: D's test errors; bigan: its encoder's).
A text-to-image run is sampled for captions of real images (`eval.text.*`): R-precision with the
run's text encoder, the captioned-digits judge when `eval.text.judge` names one, and the image
metrics of `eval.metrics`; a grid with each caption under its image goes beside the JSON.
RUN_DIR_OR_CHECKPOINT may also be a folder written by `ganscale export` (nothing is unpickled).

The run's stored config is used, with `key=value` overrides on top (e.g. a larger sample count,
the weight file's path on this machine, or where the shards are now):

    ganscale eval runs/in128 eval.num_samples=50000 eval.inception_path=/models/weights-inception-2015-12-05-6726825d.pth
    ganscale eval runs/mnist eval.extractor=classifier eval.classifier_path=classifiers/mnist.pt
    ganscale eval runs/bigan-mnist game.bigan.eval_data=../shared/data/mnist   # a game's own metrics (BiGAN: E's)
    ganscale eval runs/digits_dfgan eval.metrics=[] eval.text.data=data/digits-test eval.text.judge=judge.safetensors
    ganscale eval runs/mnist eval.ema=false        # the raw G instead of G_ema (the EMA ablation)
    torchrun --nproc_per_node 8 -m ganscale eval runs/in128 eval.num_samples=50000   # each rank its share

Under torchrun every rank generates its share of the samples and the features are gathered;
rank 0 prints the metrics and writes them to --out (default: <run>/eval/iter_<N>.json).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile

from ganscale.errors import UserError
from ganscale.utils.files import atomic_write_json


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="FID/KID/IS/precision-recall of a trained G", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="run directory, .ckpt file or a folder written by `ganscale export`")
    p.add_argument("overrides", nargs="*", help="key=value config overrides (eval.*, data.*)")
    p.add_argument("--out", default=None, help="JSON file for the metrics (default <run>/eval/iter_<N>.json)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.set_defaults(func=run)


def resolved_config(stored: dict, overrides: list[str]):
    """The checkpoint's config with `overrides` on top, validated like any config."""
    from ganscale.config import config_from_dict, load_config, to_yaml

    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise UserError(f"{bad[0]!r} is not a key=value override (e.g. eval.num_samples=50000)")
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(to_yaml(config_from_dict(stored)))
    try:
        return load_config([f.name], overrides)
    finally:
        os.unlink(f.name)


def _init_distributed(device_arg):
    """(rank, world, device) from torchrun's environment; a process group when world > 1."""
    import torch
    import torch.distributed as dist

    from ganscale.utils.ranks import launched_world_size, local_rank, rank

    world, local = launched_world_size(), local_rank()
    use_cuda = (device_arg or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda")
    device = torch.device("cuda", local) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return rank(), world, device


def default_out(ckpt_file: str, iteration: int) -> str:
    if os.path.isdir(ckpt_file):  # an exported folder
        return os.path.join(os.path.abspath(ckpt_file), "eval", f"iter_{iteration:08d}.json")
    folder = os.path.dirname(os.path.abspath(ckpt_file))
    run_dir = os.path.dirname(folder) if os.path.basename(folder) == "checkpoints" else folder
    return os.path.join(run_dir, "eval", f"iter_{iteration:08d}.json")


def write_metrics(metrics: dict, module, ckpt_file: str, out=None) -> int:
    """Print the metrics and write them as JSON to `out` (default <run>/eval/iter_<N>.json)."""
    out = out or default_out(ckpt_file, module.iteration)
    metrics = {"iter": module.iteration, "checkpoint": os.path.abspath(ckpt_file), **metrics}
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump(metrics, f, indent=2)
    print(json.dumps(metrics, indent=2))
    print(f"ganscale eval: wrote {out}")
    return 0


def run(args) -> int:
    import torch

    from ganscale.config import to_dict
    from ganscale.data import build_datamodule
    from ganscale.metrics.evaluation import build_evaluation
    from ganscale.train.restore import find_checkpoint, load_module

    ckpt_file = find_checkpoint(args.source)  # an exported folder: its results go to DIR/eval/
    module = load_module(ckpt_file)
    cfg = resolved_config(to_dict(module.cfg), args.overrides)
    module.sample_from_ema = cfg.eval.ema  # eval.ema=false: the raw G
    own = module.game.evaluate(module, cfg)  # a game measured its own way (BiGAN: its encoder)
    if own is not None:
        return write_metrics(own, module, ckpt_file, args.out)
    text = cfg.game.condition == "text"  # a text-to-image run: R-precision, the judge, image metrics
    if not cfg.eval.metrics and not text:
        raise UserError("eval.metrics is empty; name the metrics to compute, e.g. eval.metrics=[fid,kid,is,pr]")
    if module.info.kind != "image":
        raise UserError(f"`ganscale eval` computes image metrics; this run trains on {module.info.kind} data "
                        "(its metrics are in the run's metrics.jsonl)")
    rank, world, device = _init_distributed(args.device)
    dm = build_datamodule(cfg)
    module.to(device).eval()
    out = args.out or default_out(ckpt_file, module.iteration)
    evaluation = build_evaluation(cfg, dm, os.path.dirname(os.path.dirname(default_out(ckpt_file, 0))), device)
    evaluation.prepare()

    def sample_fn(n, seed=0, y=None, truncation=None):
        return module.sample(n, seed=seed, y=y, truncation=truncation, batch=cfg.eval.batch_size)

    with torch.no_grad(), module.standing_stats(cfg.eval.standing_stats, seed=cfg.eval.seed):
        metrics = evaluation.evaluate(sample_fn)
    if not metrics:
        raise UserError("nothing to measure: eval.metrics is empty and this text run has no text encoder file "
                        "(game.text.encoder) for R-precision and no judge (eval.text.judge)")
    if rank == 0:
        if text:  # the captions under G's images, beside the metrics
            metrics["grid"] = evaluation.plot(sample_fn, os.path.splitext(out)[0] + ".png")
        write_metrics(metrics, module, ckpt_file, out)
    if world > 1:
        torch.distributed.destroy_process_group()
    return 0
