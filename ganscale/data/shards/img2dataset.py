"""Stream img2dataset output as it is: tar shards of `{key}.jpg`, `{key}.txt`, `{key}.json`.

    ganscale train configs/mnist/mlp_shards.yaml data.shards.urls=/data/cc3m/ data.shards.format=img2dataset \
        data.shards.transform.resize=64 data.shards.transform.crop=center

img2dataset (LAION, CC3M, CC12M) writes `00000.tar` with `00000_stats.json` beside it and no
ganscale manifest. Here the manifest is made in memory at start-up: sample counts from the
`_stats.json` files ("successes") or, without them, from the tar headers; fields and the most
captions per sample from the first shard. Image sizes are not assumed (img2dataset may keep the
originals), so training sets a crop as for any mixed-size data. Nothing is repacked or written.
"""

from __future__ import annotations

import json
import os
import tarfile

from ganscale.data.shards.decode import sample_captions
from ganscale.data.shards.manifest import IMAGE_EXTS, Manifest, ShardEntry, is_local, local_path
from ganscale.errors import UserError


def _split(name: str) -> tuple[str, str]:
    base = os.path.basename(name)
    key, _, ext = base.partition(".")
    return os.path.join(os.path.dirname(name), key), ext.lower()


def _stats_count(path: str) -> int | None:
    stats = os.path.splitext(path)[0] + "_stats.json"
    try:
        with open(stats) as f:
            n = json.load(f).get("successes")
        return int(n) if isinstance(n, int) and n >= 0 else None
    except (OSError, ValueError, AttributeError):
        return None


def scan_shard(path: str, read_captions: bool = False) -> tuple[int, set[str], int]:
    """(samples with an image, extensions present, most captions of one sample) of one tar."""
    keys, fields, max_caps = set(), set(), 0
    try:
        with tarfile.open(path) as tar:
            for m in tar:
                if not m.isfile():
                    continue
                key, ext = _split(m.name)
                fields.add(ext)
                if ext in IMAGE_EXTS:
                    keys.add(key)
                if read_captions and ext in ("txt", "json"):
                    caps = sample_captions({ext: tar.extractfile(m).read()})
                    max_caps = max(max_caps, len(caps))
    except (OSError, tarfile.TarError) as e:
        raise UserError(f"{path}: not a readable tar shard ({e}); check data.shards.urls") from None
    return len(keys), fields, max_caps


def img2dataset_manifest(urls: list[str]) -> Manifest:
    """A manifest for img2dataset shards (local files), built without writing anything."""
    remote = [u for u in urls if not is_local(u)]
    if remote:
        raise UserError(f"img2dataset shards without a manifest.json must be local files to count their samples "
                        f"(got {remote[0]}); copy them, or pack a manifest-bearing set with `ganscale data pack`")
    entries, fields, max_caps = [], set(), 0
    for i, url in enumerate(urls):
        path = local_path(url)
        n = _stats_count(path)
        if i == 0 or n is None:
            count, f, caps = scan_shard(path, read_captions=i == 0)
            fields |= f
            max_caps = max(max_caps, caps)
            n = count if n is None else n
        entries.append(ShardEntry(os.path.basename(path), n, os.path.getsize(path)))
    images = [e for e in IMAGE_EXTS if e in fields]
    if not images:
        raise UserError(f"{urls[0]} holds no images ({', '.join(IMAGE_EXTS)}); is it an img2dataset shard?")
    return Manifest(num_samples=sum(e.num_samples for e in entries), shards=entries,
                    image_format=images[0] if len(images) == 1 else "mixed", mode="RGB",
                    captions=max_caps > 0, max_captions=max_caps, fields=sorted(fields),
                    source={"kind": "img2dataset"})
