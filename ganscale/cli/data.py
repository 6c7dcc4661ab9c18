"""`ganscale data pack|verify`: make WebDataset shards that `data.kind=shards` streams.

    ganscale data pack ../shared/data/mnist /data/mnist-shards                 # MNIST IDX (train split)
    ganscale data pack ../shared/data/fashion-mnist /data/fmnist --split t10k
    ganscale data pack /data/imagenet/train /data/in64 --resize 72 --square --workers 8
    ganscale data pack /data/cub/captions.jsonl /data/cub-shards             # {image, captions[], label?}
    ganscale data pack ../shared/data/cub-sample /data/cub-train --split train --crop bbox   # CUB + Reed captions
    ganscale data pack ../shared/data/coco-sample /data/coco-val --split val   # COCO captions
    ganscale data pack data/flowers /data/flowers-train --split train          # Oxford-102 + Reed captions
    ganscale data synth captioned-digits /data/digits-train --split train --holdout "red 7,blue 2"
    ganscale data synth oracle-sequences /data/oracle --vocab 5000 --length 20 --num 10000   # SeqGAN's oracle
    ganscale data embed /data/cub-train --model models/clip-text --kind hf --out /data/cub-train-emb
    ganscale data verify /data/mnist-shards                                    # sizes, checksums, counts
"""

from __future__ import annotations

import os
import re

from ganscale.errors import UserError


def parse_bytes(text: str) -> int:
    """'512M', '1.5G', '100000' -> bytes."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmMgGtT]?)[iI]?[bB]?\s*", str(text))
    if not m:
        raise UserError(f"--max-bytes {text!r}: give a size such as 512M, 1G or 100000")
    scale = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}[m.group(2).lower()]
    return int(float(m.group(1)) * scale)


def add_parser(sub) -> None:
    p = sub.add_parser("data", help="pack and check WebDataset shards", description=__doc__,
                       formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    pk = dsub.add_parser("pack", help="write tar shards + manifest.json from images, IDX or JSONL")
    pk.add_argument("source", help="image folder (ImageNet layout), MNIST IDX folder/file, or .jsonl manifest")
    pk.add_argument("out", help="output folder for <prefix>-NNNNNN.tar and manifest.json")
    pk.add_argument("--source", dest="kind", default="auto",
                    choices=["auto", "folder", "idx", "jsonl", "cub", "flowers", "coco"],
                    help="input kind (default: detect; cub/flowers/coco are the captioned layouts)")
    pk.add_argument("--split", default="train", help="IDX: train or t10k; CUB/flowers: train, test or all; "
                                                     "COCO: train or val (default train)")
    pk.add_argument("--crop", default="none", choices=["none", "bbox"],
                    help="CUB: bbox = StackGAN's bird crop (the box enlarged 1.5x, square)")
    pk.add_argument("--image-root", default=None, help="JSONL: folder image paths are relative to "
                                                       "(default: the JSONL's folder)")
    pk.add_argument("--image-format", default="keep", choices=["keep", "png", "jpg", "webp"],
                    help="keep = original bytes when not resized (IDX -> png); default keep")
    pk.add_argument("--quality", type=int, default=95, help="JPEG/WebP quality (default 95)")
    pk.add_argument("--resize", type=int, default=0, help="resize the shorter side to N pixels at pack time")
    pk.add_argument("--square", action="store_true", help="centre-crop every image to a square")
    pk.add_argument("--max-samples", type=int, default=5000, help="samples per shard at most (default 5000)")
    pk.add_argument("--max-bytes", default="512M", help="start a new shard at this size (default 512M)")
    pk.add_argument("--prefix", default="data", help="shard name prefix (default data)")
    pk.add_argument("--no-shuffle", action="store_true", help="keep the input order (default: seeded shuffle)")
    pk.add_argument("--seed", type=int, default=0, help="shuffle seed (default 0)")
    pk.add_argument("--limit", type=int, default=0, help="pack only the first N samples (after shuffling)")
    pk.add_argument("--workers", type=int, default=1, help="decode/encode processes (default 1)")
    pk.add_argument("--overwrite", action="store_true", help="replace shards already in OUT")
    pk.set_defaults(func=run_pack)

    sy = dsub.add_parser("synth", help="write a synthetic dataset straight into shards (captioned-digits, "
                                       "oracle-sequences)",
                         description=__import__("ganscale.data.synth.captioned_digits", fromlist=["x"]).__doc__
                         + "\n" + __import__("ganscale.data.synth.oracle_sequences", fromlist=["x"]).__doc__,
                         formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    sy.add_argument("kind", choices=["captioned-digits", "oracle-sequences"], help="dataset to synthesize")
    sy.add_argument("out", help="output folder for the shards, manifest.json and vocab.json (captioned-digits) "
                                "or oracle.safetensors (oracle-sequences)")
    sy.add_argument("--split", default="train", choices=["train", "test"],
                    help="captioned-digits: train draws MNIST train digits, test t10k digits (default train)")
    sy.add_argument("--num", type=int, default=10000, help="images or sequences (default 10000)")
    sy.add_argument("--seed", type=int, default=0, help="seed of the layouts, or of the oracle's weights (its "
                                                        "sequences: seed + 1) (default 0)")
    sy.add_argument("--vocab", type=int, default=None, help="oracle-sequences: token ids 0..V-1 (default 5000)")
    sy.add_argument("--length", type=int, default=None, help="oracle-sequences: tokens per sequence (default 20)")
    sy.add_argument("--oracle", default="", help="oracle-sequences: sample this saved oracle instead of making one")
    sy.add_argument("--max-digits", type=int, default=2, help="1..N digits per image, N <= 4 (default 2)")
    sy.add_argument("--holdout", default="", help='(colour, digit) pairs no training image holds, e.g. "red 7,blue 2"')
    sy.add_argument("--mnist", default=os.path.join("..", "shared", "data", "mnist"),
                    help="folder with the MNIST IDX files (default ../shared/data/mnist)")
    sy.add_argument("--max-samples", type=int, default=5000, help="samples per shard at most (default 5000)")
    sy.add_argument("--overwrite", action="store_true", help="replace shards already in OUT")
    sy.set_defaults(func=run_synth)

    em = dsub.add_parser("embed", help="add one text embedding per caption (local HF or open_clip model)",
                         description=__import__("ganscale.data.pack.embed", fromlist=["x"]).__doc__,
                         formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    em.add_argument("shards", help="shard folder (ganscale or img2dataset), tar path or brace pattern")
    em.add_argument("--model", required=True, help="local model: a transformers folder (hf), or open_clip "
                                                    "NAME:CHECKPOINT / folder; nothing is downloaded")
    em.add_argument("--kind", default="hf", choices=["hf", "open_clip"], help="model library (default hf)")
    em.add_argument("--out", required=True, help="folder for the shards with emb.npy, manifest.json, vocab.json")
    em.add_argument("--batch-size", type=int, default=64, help="captions per forward pass (default 64)")
    em.add_argument("--dtype", default="float32", choices=["float32", "float16"], help="stored precision")
    em.add_argument("--device", default="cpu", help="torch device (default cpu)")
    em.add_argument("--overwrite", action="store_true", help="replace shards already in OUT")
    em.set_defaults(func=run_embed)

    vf = dsub.add_parser("verify", help="check shard sizes, checksums and sample counts against the manifest")
    vf.add_argument("path", help="shard folder or manifest.json")
    vf.add_argument("--quick", action="store_true", help="sizes only, no checksums or sample counts")
    vf.set_defaults(func=run_verify)


def run_pack(args) -> int:
    from ganscale.data.pack import EncodeOptions, PackOptions, open_source, pack

    if args.resize < 0 or args.limit < 0 or args.workers < 1 or not 1 <= args.quality <= 100:
        raise UserError("--resize and --limit must be >= 0, --workers >= 1, --quality in 1..100")
    if args.image_format == "webp":
        from PIL import features

        if not features.check("webp"):
            raise UserError("this Pillow has no WebP support; use --image-format jpg or png")
    source = open_source(args.source, args.kind, args.split, args.image_root, args.crop)
    opts = PackOptions(
        encode=EncodeOptions(args.image_format, args.quality, args.resize, args.square),
        max_samples=args.max_samples, max_bytes=parse_bytes(args.max_bytes), prefix=args.prefix,
        shuffle=not args.no_shuffle, seed=args.seed, limit=args.limit, workers=args.workers,
        overwrite=args.overwrite,
    )
    m = pack(source, args.out, opts)
    size = sum(s.bytes for s in m.shards)
    shape = f"{m.width}x{m.height}" if m.width else "mixed sizes"
    print(f"ganscale: packed {m.num_samples} samples ({shape}, {m.mode}, {m.image_format}, "
          f"{m.num_classes} classes) into {len(m.shards)} shards, {size / 1e6:.1f} MB, in {args.out}; "
          f"skipped {m.num_skipped}")
    print_written(m, args.out)
    return 0


def print_written(m, out: str) -> None:
    if m.vocab:
        print(f"ganscale: vocabulary {os.path.join(out, m.vocab)}; captions per sample up to {m.max_captions}")
    print(f"ganscale: manifest {os.path.join(out, 'manifest.json')}; train with "
          f"data.kind=shards data.shards.urls={out}")


def run_synth(args) -> int:
    from ganscale.data.pack import PackOptions, pack

    if args.kind == "oracle-sequences":
        return run_oracle_sequences(args)
    from ganscale.data.synth.captioned_digits import synth_source

    source = synth_source(args.mnist, args.split, args.num, args.seed, args.max_digits, args.holdout)
    # the layouts are already random: no shuffle, so sample n is layout n
    m = pack(source, args.out, PackOptions(max_samples=args.max_samples, shuffle=False, overwrite=args.overwrite))
    print(f"ganscale: wrote {m.num_samples} captioned-digit images ({args.split}, 64x64 RGB, "
          f"{m.max_captions} captions each) into {len(m.shards)} shards in {args.out}")
    print_written(m, args.out)
    return 0


def run_oracle_sequences(args) -> int:
    from ganscale.data.synth.oracle_sequences import synth_oracle_sequences

    m = synth_oracle_sequences(args.out, args.vocab, args.length, args.num, args.seed, args.oracle,
                               args.max_samples, args.overwrite)
    print(f"ganscale: wrote {m.num_samples} oracle sequences (vocab {m.token_vocab}, length {m.token_length}) "
          f"into {len(m.shards)} shards in {args.out}; oracle {os.path.join(args.out, m.oracle)}")
    print_written(m, args.out)
    return 0


def run_embed(args) -> int:
    from ganscale.data.pack.embed import embed_shards

    m = embed_shards(args.shards, args.out, args.model, args.kind, args.batch_size, args.dtype, args.device,
                     args.overwrite)
    print(f"ganscale: embedded the captions of {m.num_samples} samples ({m.text_emb_dim}-d, {args.dtype}) "
          f"into {len(m.shards)} shards in {args.out}")
    print_written(m, args.out)
    return 0


def run_verify(args) -> int:
    from ganscale.data.shards.verify import verify

    problems, m = verify(args.path, quick=args.quick)
    if problems:
        raise UserError(f"{len(problems)} problem(s) in {args.path}:\n" + "\n".join(f"  - {p}" for p in problems))
    print(f"ganscale: {len(m.shards)} shards, {m.num_samples} samples: all match the manifest")
    return 0
