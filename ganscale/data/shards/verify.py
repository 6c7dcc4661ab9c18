"""`ganscale data verify`: compare shard files with their manifest (size, sha256, sample count)."""

from __future__ import annotations

import os

from ganscale.data.shards.manifest import MANIFEST_NAME, Manifest
from ganscale.errors import UserError


def count_samples(path: str) -> int:
    """Samples (distinct keys) in a tar shard; raises on a truncated or corrupt file."""
    import tarfile

    from webdataset.tariterators import base_plus_ext

    keys = set()
    with tarfile.open(path, "r|*") as tar:
        for info in tar:
            if info.isreg():
                key, _ = base_plus_ext(info.name)
                if key is not None:
                    keys.add(key)
    return len(keys)


def verify(path: str, quick: bool = False) -> tuple[list[str], Manifest]:
    from ganscale.data.pack.writer import sha256_file

    manifest_path = os.path.join(path, MANIFEST_NAME) if os.path.isdir(path) else path
    if not os.path.isfile(manifest_path):
        raise UserError(f"no manifest at {manifest_path}; pass a folder written by `ganscale data pack`")
    m = Manifest.load(manifest_path)
    root = os.path.dirname(os.path.abspath(manifest_path))
    problems = []
    for s in m.shards:
        f = os.path.join(root, s.name)
        if not os.path.isfile(f):
            problems.append(f"{s.name}: missing")
            continue
        size = os.path.getsize(f)
        if size != s.bytes:
            problems.append(f"{s.name}: {size} bytes, manifest says {s.bytes}")
            continue
        if quick:
            continue
        if sha256_file(f) != s.sha256:
            problems.append(f"{s.name}: sha256 differs from the manifest (corrupt or replaced)")
            continue
        try:
            n = count_samples(f)
        except Exception as e:
            problems.append(f"{s.name}: unreadable tar ({e})")
            continue
        if n != s.num_samples:
            problems.append(f"{s.name}: {n} samples, manifest says {s.num_samples}")
    total = sum(s.num_samples for s in m.shards)
    if total != m.num_samples:
        problems.append(f"manifest: shard counts sum to {total}, num_samples is {m.num_samples}")
    return problems, m
