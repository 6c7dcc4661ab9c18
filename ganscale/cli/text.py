"""`ganscale text train|eval`: the DAMSM text/image encoder pair that text-to-image GANs use frozen.

    ganscale text train configs/text/digits_damsm.yaml data=/data/digits-train test_data=/data/digits-test
    ganscale text eval text_encoder.safetensors /data/digits-test [--candidates 100]

`train` prints one JSON line at the end: R-precision on the held-out images, sizes, seconds.
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


def run_train(args) -> int:
    from ganscale.config.load import load_config
    from ganscale.text.config import TextEncoderConfig
    from ganscale.text.train import train_encoder

    cfg = load_config([args.config], args.overrides, schema=TextEncoderConfig)
    start = time.time()
    result = train_encoder(cfg)
    print(json.dumps({"r_precision": result.r_precision, "candidates": result.candidates,
                      "num_train": result.num_train, "num_test": result.num_test,
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
