"""Images/s: the ganscale shard pipeline vs one JPEG file per image with a plain Dataset + DataLoader.

    python benchmarks/data_loader.py                       # 3000 images 256x256 -> 64x64, 1 and 2 workers
    python benchmarks/data_loader.py --num 5000 --size 320 --out 64 --repeats 3 --markdown docs/data_benchmark.md

Both loaders read the *same JPEG bytes* (`ganscale data pack` keeps the original bytes), decode with
Pillow, resize the shorter side to --out, centre-crop, and hand the training process float batches
in [-1, 1]. The file-per-image loader is the textbook one: a map-style Dataset over file paths,
shuffle=True, default collate. ganscale's differences: sequential reads of large tar shards, batches
assembled in the workers and sent as uint8 (normalised in the consumer, on the GPU in training), and
JPEG DCT-domain downscaling (`data.shards.draft`). The run also measures ganscale with draft=false,
so the gain of each part is visible. Images are synthetic "photo-like" RGB (smooth colour fields,
Fashion-MNIST shapes when available, sensor noise), JPEG quality 90; nothing is downloaded.
Each configuration runs one warm-up pass (page cache), then --repeats timed passes, interleaved.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def photo_like(rng: np.random.Generator, size: int, shape_src) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = np.zeros((size, size, 3), np.float32)
    for c in range(3):
        a, b, f = rng.uniform(-1, 1, 3)
        img[..., c] = 128 + 60 * np.sin(2 * np.pi * (a * xx + b * yy) * (1 + 2 * abs(f)) + rng.uniform(0, 6))
    if shape_src is not None:
        src = Image.fromarray(shape_src[rng.integers(len(shape_src))])
        shape = np.asarray(src.resize((size, size), Image.BILINEAR))
        img += (shape[..., None].astype(np.float32) - 64) * rng.uniform(0.3, 0.9, 3)
    img += rng.normal(0, 12, img.shape)  # sensor noise: realistic JPEG size and decode cost
    return np.clip(img, 0, 255).astype(np.uint8)


def make_jpegs(root: str, num: int, size: int, classes: int = 10) -> list[str]:
    shape_src = None
    shared = os.environ.get("GANSCALE_SHARED_DATA") or os.path.join(REPO, "..", "shared", "data")
    fm = os.path.join(shared, "fashion-mnist", "t10k-images-idx3-ubyte.gz")
    if os.path.isfile(fm):
        from ganscale.data.pack.sources import read_idx

        shape_src = read_idx(fm)[:2000]
    rng = np.random.default_rng(0)
    paths = []
    for i in range(num):
        d = os.path.join(root, f"class{i % classes:02d}")
        os.makedirs(d, exist_ok=True)
        p = os.path.join(d, f"img{i:06d}.jpg")
        Image.fromarray(photo_like(rng, size, shape_src)).save(p, quality=90)
        paths.append(p)
    return paths


class FileDataset(Dataset):
    """The textbook loader: one file per image, decode, resize, crop, normalise."""

    def __init__(self, paths: list[str], out: int):
        self.paths, self.out = paths, out

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        img = Image.open(self.paths[i]).convert("RGB")
        w, h = img.size
        s = self.out / min(w, h)
        img = img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.BILINEAR)
        w, h = img.size
        left, top = (w - self.out) // 2, (h - self.out) // 2
        img = img.crop((left, top, left + self.out, top + self.out))
        x = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float().div_(127.5).sub_(1)
        return x, i % 10


def time_files(paths, out, batch, workers) -> float:
    loader = DataLoader(FileDataset(paths, out), batch_size=batch, shuffle=True, num_workers=workers,
                        drop_last=True, persistent_workers=False)
    t0, n = time.perf_counter(), 0
    for x, _ in loader:
        n += len(x)
    return n / (time.perf_counter() - t0)


def time_shards(shards, out, batch, workers, draft: bool, num: int) -> float:
    from ganscale.config import load_config
    from ganscale.data import build_datamodule

    cfg = load_config([], ["data.kind=shards", f"data.shards.urls={shards}", f"data.batch_size={batch}",
                           f"data.num_workers={workers}", f"data.shards.draft={str(draft).lower()}",
                           f"data.shards.transform.resize={out}", "data.shards.transform.crop=center",
                           "data.shards.shuffle_buffer=1000"])
    dm = build_datamodule(cfg)
    loader = dm.train_dataloader()
    t0, n = time.perf_counter(), 0
    for b in loader:
        b = dm.on_after_batch_transfer(dm.on_before_batch_transfer(b, 0), 0)  # uint8 -> [-1, 1] here
        n += len(b["x"])
        if n >= num - batch + 1:
            break
    rate = n / (time.perf_counter() - t0)
    del loader
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--num", type=int, default=3000)
    ap.add_argument("--size", type=int, default=256, help="stored JPEG side")
    ap.add_argument("--out", type=int, default=64, help="training resolution")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--markdown", default=None, help="append the results table to this file")
    ap.add_argument("--dir", default=None, help="work folder (default: a temporary one)")
    args = ap.parse_args()
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        t = time.perf_counter()
        paths = make_jpegs(os.path.join(tmp, "jpeg"), args.num, args.size)
        from ganscale.data.pack import PackOptions, open_source, pack

        m = pack(open_source(os.path.join(tmp, "jpeg")), os.path.join(tmp, "shards"),
                 PackOptions(max_samples=500), log=lambda s: None)
        mb = sum(s.bytes for s in m.shards) / 1e6
        print(f"# {args.num} JPEGs {args.size}x{args.size} ({mb:.1f} MB in {len(m.shards)} shards), "
              f"made in {time.perf_counter() - t:.0f} s", flush=True)
        shards = os.path.join(tmp, "shards")
        loaders = {
            "file per image (Dataset+DataLoader)": lambda w: time_files(paths, args.out, args.batch, w),
            "ganscale shards": lambda w: time_shards(shards, args.out, args.batch, w, True, args.num),
            "ganscale shards, draft=false": lambda w: time_shards(shards, args.out, args.batch, w, False, args.num),
        }
        rows = []
        for w in args.workers:
            for fn in loaders.values():  # warm-up: page cache, imports
                fn(w)
            rates = {k: [] for k in loaders}
            for _ in range(args.repeats):
                for k, fn in loaders.items():
                    rates[k].append(fn(w))
            base = rates["file per image (Dataset+DataLoader)"]
            for k, r in rates.items():
                ratios = [a / b for a, b in zip(r, base)]
                rows.append((w, k, statistics.median(r), statistics.median(ratios), ratios))
                print(f"workers={w}  {k:40s} {statistics.median(r):8.0f} img/s   x{statistics.median(ratios):.2f} "
                      f"(per run: {', '.join(f'{x:.2f}' for x in ratios)})", flush=True)
    table = ["| workers | loader | images/s (median) | vs file per image (median of per-run ratios) | per-run ratios |",
             "|---|---|---|---|---|"]
    table += [f"| {w} | {k} | {r:.0f} | {q:.2f}x | {', '.join(f'{x:.2f}' for x in ratios)} |"
              for w, k, r, q, ratios in rows]
    text = (f"\n{args.num} JPEGs of {args.size}x{args.size} -> {args.out}x{args.out}, batch {args.batch}, "
            f"{args.repeats} timed passes per configuration, interleaved.\n\n" + "\n".join(table) + "\n")
    print(text)
    if args.markdown:
        with open(args.markdown, "a") as f:
            f.write(text)


if __name__ == "__main__":
    main()
