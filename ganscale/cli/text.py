"""`ganscale text train|eval|judge`: the DAMSM text/image encoder pair that text-to-image GANs use
frozen, and the captioned-digits judge that scores their images.

    ganscale text train configs/text/digits_damsm.yaml data=/data/digits-train test_data=/data/digits-test
    ganscale text eval text_encoder.safetensors /data/digits-test [--candidates 100]
    ganscale data synth captioned-digits /data/judge-train --split train --seed 2     # every pair kept
    ganscale text judge /data/judge-train /data/digits-test --out judge.safetensors [--steps 600]

`judge` trains the digit-and-colour judge on the real images of captioned-digits shards (apart
from any GAN and encoder) and prints its exact-match rate on the test shards; runs evaluate with
it through `eval.text.judge=judge.safetensors` (training and `ganscale eval`). Its training shards
must hold every (colour, digit) pair: shards synthesized with --holdout are refused (a judge that
never saw a red 7 never reads one).

`train` prints one JSON line at the end: R-precision on the held-out images, sizes, the steps
taken and the step of the saved pair (with early stop, its validation R-precision), seconds.
"""

from __future__ import annotations

import argparse
import json
import time

from ganscale.errors import UserError


def add_parser(sub) -> None:
    p = sub.add_parser("text", help="train or evaluate the text encoder (DAMSM)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    tsub = p.add_subparsers(dest="text_command", metavar="ACTION", required=True)
    tr = tsub.add_parser("train", help="train the text/image encoder pair from packed captioned shards")
    tr.add_argument("config", help="YAML file with TextEncoderConfig keys (configs/text/)")
    tr.add_argument("overrides", nargs="*", help="key=value overrides (e.g. steps=100 out=enc.safetensors)")
    tr.set_defaults(func=run_train)
    ev = tsub.add_parser("eval", help="R-precision of a saved encoder on a captioned shard folder")
    ev.add_argument("encoder", help="file written by `ganscale text train`")
    ev.add_argument("data", help="packed shard folder with captions")
    ev.add_argument("--candidates", type=int, default=100, help="true caption among this many (default 100)")
    ev.set_defaults(func=run_eval)
    ju = tsub.add_parser("judge", help="train the captioned-digits judge (scores text-to-image samples)")
    ju.add_argument("train", help="captioned-digits shards to train on (ganscale data synth captioned-digits)")
    ju.add_argument("test", help="captioned-digits shards for its exact-match rate on real images")
    ju.add_argument("--out", required=True, help="the judge file (safetensors)")
    ju.add_argument("--steps", type=int, default=600, help="optimizer steps (default 600)")
    ju.add_argument("--batch-size", type=int, default=64, help="images per step (default 64)")
    ju.add_argument("--seed", type=int, default=0)
    ju.set_defaults(func=run_judge)


def run_train(args) -> int:
    from ganscale.config.load import load_config
    from ganscale.text.config import TextEncoderConfig
    from ganscale.text.train import train_encoder

    cfg = load_config([args.config], args.overrides, schema=TextEncoderConfig)
    start = time.time()
    result = train_encoder(cfg)
    print(json.dumps({"r_precision": result.r_precision, "candidates": result.candidates,
                      "num_train": result.num_train, "num_test": result.num_test, "num_val": result.num_val,
                      "steps": result.steps, "best_step": result.best_step,
                      "val_r_precision": result.val_r_precision, "history": result.history,
                      "seconds": round(time.time() - start, 1), "out": cfg.out}))
    return 0


def run_eval(args) -> int:
    from dataclasses import replace

    from ganscale.text.damsm import candidates_used
    from ganscale.text.dataset import CaptionedImages
    from ganscale.text.pair import load_encoder
    from ganscale.text.train import evaluate

    if args.candidates < 2:
        raise UserError("--candidates must be >= 2")
    pair = load_encoder(args.encoder)
    cfg = replace(pair.cfg, candidates=args.candidates, device="cpu")
    data = CaptionedImages.load(args.data, cfg.image_size, cfg.max_len, vocab=pair.vocab)
    print(json.dumps({"r_precision": evaluate(pair, data, cfg),
                      "candidates": candidates_used(data.groups, cfg.candidates), "num_images": len(data)}))
    return 0


def run_judge(args) -> int:
    from ganscale.metrics.digits_judge import save_judge, train_judge

    if args.steps < 1 or args.batch_size < 1:
        raise UserError("--steps and --batch-size must be >= 1")
    start = time.time()
    judge, acc = train_judge(args.train, args.test, steps=args.steps, batch=args.batch_size, seed=args.seed,
                             log=lambda m: print(m, flush=True))
    save_judge(judge, args.out, real_exact=acc, steps=args.steps)
    print(json.dumps({"real_exact": acc, "steps": args.steps, "seconds": round(time.time() - start, 1),
                      "out": args.out}))
    return 0
