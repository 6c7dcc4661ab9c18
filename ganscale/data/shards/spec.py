"""Shard spec -> list of URLs with their sample counts, checked at start-up.

A spec is a folder holding manifest.json, a tar path, brace notation
(`data-{000000..000127}.tar`), a `pipe:` command or an http(s) URL, or a list of these (`::`
separates specs inside one string, as in webdataset). Every problem that would otherwise surface
deep inside a DataLoader worker (missing file, shard not in the manifest, a `pipe:` command that
fails) is raised here as one UserError naming the shard and the fix.
"""

from __future__ import annotations

import os
import subprocess
import threading
from dataclasses import dataclass
from typing import Optional

from ganscale.data.shards.manifest import MANIFEST_NAME, Manifest, is_local, local_path, shard_name
from ganscale.errors import UserError

PROBE_BYTES = 512
PROBE_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class ShardSet:
    urls: tuple[str, ...]
    sizes: tuple[int, ...]
    """Samples per shard (from the manifest)."""
    manifest: Manifest
    manifest_url: str

    @property
    def num_samples(self) -> int:
        return sum(self.sizes)


def _specs(urls) -> list[str]:
    items = [urls] if isinstance(urls, str) else list(urls or [])
    return [p.strip() for item in items for p in item.split("::") if p.strip()]


def _join(base: str, name: str) -> str:
    """`name` next to the file/URL `base` (a local path, an http URL or inside a pipe: command)."""
    old = shard_name(base)
    if base.startswith("pipe:") and old:
        return base.replace(old, name)
    if is_local(base):
        return os.path.join(os.path.dirname(local_path(base)), name)
    return base.rsplit("/", 1)[0] + "/" + name


def _img2dataset_stats(tar_path: str) -> bool:
    """img2dataset writes `00000_stats.json` beside `00000.tar`; ganscale's packer never does (an
    interrupted `data pack`, which leaves tars without a manifest, is still refused)."""
    return os.path.isfile(os.path.splitext(tar_path)[0] + "_stats.json")


def _local_tars(folder: str) -> list[str]:
    return sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".tar"))


def resolve_shards(urls, manifest: str = "", format: str = "auto") -> ShardSet:
    """Shard URLs with their sample counts. format: ganscale (manifest.json required), img2dataset
    (no manifest: counted at start-up, see img2dataset.py) or auto (img2dataset when no manifest)."""
    import braceexpand

    expanded: list[str] = []
    folder_manifest: Optional[str] = None
    for spec in _specs(urls):
        folder = local_path(spec) if is_local(spec) and os.path.isdir(local_path(spec)) else None
        tars = _local_tars(folder) if folder is not None else []
        no_manifest = folder is not None and not os.path.isfile(os.path.join(folder, MANIFEST_NAME))
        if folder is not None and not manifest and (format == "img2dataset" or (
                format == "auto" and no_manifest and tars and _img2dataset_stats(tars[0]))):
            if not tars:
                raise UserError(f"{folder} holds no manifest.json and no .tar shards; make shards with "
                                "`ganscale data pack SRC OUT` or point data.shards.urls at img2dataset output")
            expanded += tars
            format = "img2dataset"
        elif folder is not None:
            folder_manifest = folder_manifest or os.path.join(folder, MANIFEST_NAME)
            m = Manifest.load(os.path.join(folder, MANIFEST_NAME))
            expanded += [os.path.join(folder, s.name) for s in m.shards]
        elif is_local(spec) and "{" not in spec and not os.path.exists(local_path(spec)):
            raise UserError(f"shard path {spec} does not exist; pass data.shards.urls=FOLDER (holding "
                            "manifest.json and the shards), a .tar path, a brace pattern "
                            "data-{000000..000099}.tar or a pipe: command")
        else:
            expanded += list(braceexpand.braceexpand(spec))
    manifest_url = manifest or folder_manifest or (_join(expanded[0], MANIFEST_NAME) if expanded else "")
    if format == "img2dataset" or (format == "auto" and not manifest and expanded and is_local(manifest_url)
                                   and not os.path.isfile(local_path(manifest_url))
                                   and is_local(expanded[0]) and _img2dataset_stats(local_path(expanded[0]))):
        from ganscale.data.shards.img2dataset import img2dataset_manifest

        if not expanded:
            raise UserError("data.shards.format=img2dataset needs data.shards.urls (a folder, tar paths or a "
                            "brace pattern)")
        m = img2dataset_manifest(expanded)
        return ShardSet(tuple(expanded), tuple(s.num_samples for s in m.shards), m, "")
    if not manifest_url:
        raise UserError("no shards given: set data.shards.urls=FOLDER_OR_SPEC or data.shards.manifest=PATH")
    if is_local(manifest_url) and not os.path.isfile(local_path(manifest_url)):
        raise UserError(f"no shard manifest at {manifest_url}; pass data.shards.manifest=PATH "
                        f"(`ganscale data pack` writes {MANIFEST_NAME} next to the shards)")
    m = Manifest.load(manifest_url)
    if not expanded:
        expanded = [_join(manifest_url, s.name) for s in m.shards]
    missing = [u for u in expanded if is_local(u) and not os.path.isfile(local_path(u))]
    if missing:
        raise UserError(f"{len(missing)} of {len(expanded)} shard file(s) do not exist, e.g. {missing[0]}; "
                        "check data.shards.urls (brace ranges must match the files on disk)")
    known = m.shard_sizes()
    unknown = [u for u in expanded if shard_name(u) not in known]
    if unknown:
        raise UserError(f"{len(unknown)} shard(s) are not in the manifest {manifest_url}, e.g. {unknown[0]}; "
                        "check data.shards.urls (shard names must match the manifest) or pass the right manifest")
    sizes = tuple(known[shard_name(u)] for u in expanded)
    if sum(sizes) == 0:
        raise UserError(f"the shards in {manifest_url} hold no samples; re-pack the data")
    return ShardSet(tuple(expanded), sizes, m, manifest_url)


def _read_head(url: str) -> tuple[bytes, str]:
    """The first PROBE_BYTES of a shard and any error text (stderr of a pipe: command)."""
    if is_local(url):
        with open(local_path(url), "rb") as f:
            return f.read(PROBE_BYTES), ""
    if url.startswith("pipe:"):
        proc = subprocess.Popen(url[5:], shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    else:
        from webdataset.gopen import gopen

        stream = gopen(url, "rb")
        try:
            return stream.read(PROBE_BYTES), ""
        finally:
            try:
                stream.close()
            except Exception:
                pass
    out: dict = {}
    t = threading.Thread(target=lambda: out.update(head=proc.stdout.read(PROBE_BYTES)), daemon=True)
    t.start()
    t.join(PROBE_TIMEOUT_S)
    if t.is_alive():
        proc.kill()
        return b"", f"no data after {PROBE_TIMEOUT_S:.0f} s"
    head = out.get("head", b"")
    err = ""
    if len(head) < PROBE_BYTES:  # short read: the command probably failed; collect why
        try:
            proc.wait(timeout=10)
            err = proc.stderr.read().decode(errors="replace").strip()[-500:]
            err = f"exit status {proc.returncode}" + (f": {err}" if err else "")
        except subprocess.TimeoutExpired:
            pass
    proc.kill()
    proc.wait()
    return head, err


def probe_shard(url: str) -> None:
    """Open `url` and check it starts like a tar (or gzip) file; UserError otherwise."""
    try:
        head, err = _read_head(url)
    except Exception as e:
        raise UserError(f"cannot open shard {url}: {e}; check data.shards.urls") from None
    is_tar = len(head) >= 262 and head[257:262] == b"ustar"
    is_gzip = head[:2] == b"\x1f\x8b"
    if not (is_tar or is_gzip):
        what = f"got {len(head)} bytes" + (f" ({err})" if err else "")
        raise UserError(f"shard {url} is not a readable tar file: {what}; check data.shards.urls "
                        "(a pipe: command must write the tar to stdout, e.g. `pipe:aws s3 cp s3://bucket/x.tar -`)")
