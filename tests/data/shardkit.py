"""Helpers and fixtures of the data tests: tiny shards packed by the real packer, configs, the CLI.

(A module rather than tests/data/conftest.py: the suite's tests import `conftest` by name.)"""

import os
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def shared_data_dir():
    """../shared/data (or $GANSCALE_SHARED_DATA) if it holds MNIST, else None."""
    for d in (os.environ.get("GANSCALE_SHARED_DATA"), os.path.join(REPO, "..", "shared", "data")):
        if d and os.path.isfile(os.path.join(d, "mnist", "train-images-idx3-ubyte.gz")):
            return os.path.abspath(d)
    return None


def numbered_images(n: int, size: int = 8, channels: int = 1, seed: int = 0) -> np.ndarray:
    """n uint8 images whose first two pixels spell their index (identity survives the round trip)."""
    rng = np.random.default_rng(seed)
    shape = (n, size, size) if channels == 1 else (n, size, size, channels)
    x = rng.integers(0, 256, size=shape, dtype=np.uint8)
    idx = np.arange(n)
    x[:, 0, 0] = idx % 256
    x[:, 0, 1] = idx // 256
    return x


def index_of(img: np.ndarray) -> int:
    """Inverse of numbered_images for a decoded H x W x C image."""
    return int(img[0, 0, 0]) + 256 * int(img[0, 1, 0])


def pack_arrays(out_dir, images, labels=None, max_samples=10, shuffle=False, **kw):
    """Pack uint8 arrays with the real packer (IDX-like source: PNG, one key per index)."""
    from ganscale.data.pack import Item, PackOptions, Source, pack

    labels = np.zeros(len(images), dtype=int) - 1 if labels is None else labels
    items = [Item(source=f"arr[{i}]", pixels=images[i], label=int(labels[i])) for i in range(len(images))]
    classes = [str(c) for c in range(int(max(labels)) + 1)] if max(labels) >= 0 else []
    src = Source("idx", items, classes, description={"kind": "test"})
    return pack(src, str(out_dir), PackOptions(max_samples=max_samples, shuffle=shuffle, **kw), log=lambda m: None)


def pack_captioned(out_dir, n=24, max_samples=5):
    """n numbered 8x8 images, image i with 1 + i % 3 captions, packed with a vocabulary."""
    from ganscale.data.pack import Item, PackOptions, Source, pack

    images = numbered_images(n)
    items = [Item(source=f"arr[{i}]", pixels=images[i],
                  captions=[f"image {i} caption {j}" for j in range(1 + i % 3)]) for i in range(n)]
    return pack(Source("test", items, [], description={"kind": "test"}), str(out_dir),
                PackOptions(max_samples=max_samples, shuffle=False), log=lambda m: None)


def shards_cfg(urls, *overrides, batch_size=4, num_workers=0):
    from ganscale.config import load_config

    return load_config([], ["data.kind=shards", f"data.shards.urls={urls}", f"data.batch_size={batch_size}",
                            f"data.num_workers={num_workers}", *overrides])


def datamodule(urls, *overrides, **kw):
    from ganscale.data import build_datamodule

    return build_datamodule(shards_cfg(urls, *overrides, **kw))


def take(dm, loader, k):
    """k batches as Lightning would hand them to training_step (hooks applied)."""
    out = []
    for b in loader:
        out.append(dm.on_after_batch_transfer(dm.on_before_batch_transfer(b, 0), 0))
        if len(out) == k:
            break
    return out


def run_cli(*args, env=None, timeout=300):
    e = dict(os.environ)
    e["PYTHONPATH"] = REPO + os.pathsep + e.get("PYTHONPATH", "")
    e.pop("GANSCALE_RUN_DIR", None)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "ganscale", *args], cwd=REPO, env=e,
                          capture_output=True, text=True, timeout=timeout)


def add_shard(path, name, samples):
    """Write a hand-made shard into `path` and list it in the manifest."""
    import webdataset as wds

    from ganscale.data.shards.manifest import Manifest, ShardEntry

    with wds.TarWriter(os.path.join(path, name)) as w:
        for s in samples:
            w.write(s)
    m = Manifest.load(os.path.join(path, "manifest.json"))
    m.shards.append(ShardEntry(name, len(samples)))
    m.num_samples += len(samples)
    m.save(os.path.join(path, "manifest.json"))


def good_png(key, label=0):
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8), 7, np.uint8)).save(buf, format="PNG")
    return {"__key__": key, "png": buf.getvalue(), "cls": str(label).encode()}


@pytest.fixture
def mnist_dir():
    d = shared_data_dir()
    if d is None:
        pytest.skip("MNIST IDX files not found: set GANSCALE_SHARED_DATA or put them in <repo>/../shared/data/mnist")
    return os.path.join(d, "mnist")


class CliResult:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def cli(capsys):
    """`ganscale ARGS` in this process (argparse, dispatch, UserError -> exit 2), output captured."""
    from ganscale.cli import main

    def call(*args):
        capsys.readouterr()
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return call
