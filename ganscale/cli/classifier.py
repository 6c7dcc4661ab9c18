"""`ganscale classifier train|test`: the digit classifier that image metrics use on MNIST-like
data (eval.extractor=classifier) and that judges class-conditional samples.

    ganscale classifier train --data ../shared/data/mnist --out classifiers/mnist.pt [--epochs 3]
    ganscale classifier test  --data ../shared/data/mnist --model classifiers/mnist.pt
"""

from __future__ import annotations

import argparse
import json

from ganscale.errors import UserError


def add_parser(sub) -> None:
    p = sub.add_parser("classifier", help="train or test the digit classifier used by image metrics",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    csub = p.add_subparsers(dest="classifier_command", metavar="ACTION", required=True)
    tr = csub.add_parser("train", help="train on the train split, report test accuracy, save")
    tr.add_argument("--data", required=True, help="folder with the MNIST-style IDX files (train-* and t10k-*)")
    tr.add_argument("--out", required=True, help="where to save the classifier (.pt)")
    tr.add_argument("--epochs", type=int, default=3, help="passes over the train split (default 3)")
    tr.add_argument("--batch-size", type=int, default=128, help="batch size (default 128)")
    tr.add_argument("--lr", type=float, default=2e-3, help="peak learning rate of Adam (default 2e-3)")
    tr.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    tr.add_argument("--limit", type=int, default=0, help="train on the first N train images only (quick checks)")
    tr.set_defaults(func=run_train)
    te = csub.add_parser("test", help="accuracy of a saved classifier on the test split")
    te.add_argument("--data", required=True, help="folder with the MNIST-style IDX files")
    te.add_argument("--model", required=True, help="classifier file from `ganscale classifier train`")
    te.set_defaults(func=run_test)


def run_train(args) -> int:
    from ganscale.data.idx import load_digits
    from ganscale.metrics.classifier import save_classifier, train_classifier

    if args.epochs < 1 or args.batch_size < 1 or args.lr <= 0:
        raise UserError("--epochs and --batch-size must be >= 1 and --lr > 0")
    x, y = load_digits(args.data, "train")
    if args.limit:
        x, y = x[:args.limit], y[:args.limit]
    test = load_digits(args.data, "test")
    result = train_classifier((x, y), test, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                              seed=args.seed, log=lambda m: print(f"ganscale classifier: {m}", flush=True))
    save_classifier(result, args.out, source=f"{args.data} (train split, {len(x)} images)")
    print(json.dumps({"test_accuracy": result.test_accuracy, "seconds": round(result.seconds, 1), "out": args.out}))
    return 0


def run_test(args) -> int:
    from ganscale.metrics.classifier import accuracy, load_classifier, load_digits

    model = load_classifier(args.model, what="--model")
    acc = accuracy(model, *load_digits(args.data, "test"))
    print(json.dumps({"test_accuracy": acc, "model": args.model}))
    return 0
