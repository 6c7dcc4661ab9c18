"""The shard manifest: what `ganscale data pack` wrote and what training reads.

`manifest.json` sits next to the shards. It records the sample count, the classes, the image
format and size, whether captions / text embeddings are present, and every shard with its sample
count, byte size and sha256, so training knows the epoch length and `ganscale data verify` can
check the bytes. A shard-spec URL is matched to its manifest entry by file name.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Optional

from ganscale.errors import UserError
from ganscale.utils.files import atomic_write_json

FORMAT = "ganscale-shards/1"
MANIFEST_NAME = "manifest.json"
VOCAB_NAME = "vocab.json"
"""The word vocabulary `data pack` builds from the train captions, beside the manifest."""
IMAGE_EXTS = ("png", "jpg", "jpeg", "webp")
"""Sample keys that hold encoded image bytes, in the order they are looked up."""
TOKENS_KEY = "tokens.npy"
"""Sample key of a token sequence: a .npy array (int, shape [length]) read with allow_pickle=False."""


@dataclass
class ShardEntry:
    name: str
    """File name of the shard, relative to the manifest's folder."""
    num_samples: int
    """Samples written into this shard."""
    bytes: int = 0
    """Size of the tar file."""
    sha256: str = ""
    """Checksum of the tar file (`ganscale data verify` compares it)."""


@dataclass
class Manifest:
    num_samples: int
    """Samples in all shards."""
    shards: list[ShardEntry]
    """Every shard, in write order."""
    image_format: str = "png"
    """Encoding of the stored images: png, jpg, webp (or `mixed` when original bytes were kept)."""
    mode: str = "RGB"
    """PIL mode training decodes to: `L` (1 channel) or `RGB` (3 channels)."""
    height: int = 0
    """Height of every image; 0 when sizes are mixed (training must then crop)."""
    width: int = 0
    """Width of every image; 0 when sizes are mixed."""
    classes: list[str] = field(default_factory=list)
    """Class names; label i is classes[i]. Empty for unlabeled data."""
    captions: bool = False
    """Samples carry captions (`json` key `captions`, `txt` one caption per line)."""
    text_emb_dim: int = 0
    """Width of precomputed text embeddings stored as `emb.npy`; 0 when absent."""
    max_captions: int = 0
    """Most captions any sample has (batches pad caption ids to this many rows)."""
    fields: list[str] = field(default_factory=list)
    """Sample keys present in the shards (png/jpg, cls, txt, json, emb.npy); empty in old manifests."""
    vocab: str = ""
    """Word vocabulary file next to the manifest (`vocab.json`), or empty."""
    token_length: int = 0
    """Token shards (`tokens.npy` samples, no images): tokens per sequence; 0 for image shards."""
    token_vocab: int = 0
    """Token shards: ids are in [0, token_vocab)."""
    oracle: str = ""
    """Token shards sampled from a known model: its file next to the manifest (`oracle.safetensors`,
    ganscale.data.synth.oracle), or empty."""
    num_skipped: int = 0
    """Inputs skipped while packing (unreadable images, missing files)."""
    skipped_examples: list[str] = field(default_factory=list)
    """The first skipped inputs with the reason."""
    source: dict = field(default_factory=dict)
    """Where the data came from and the pack options."""
    format: str = FORMAT

    @property
    def tokens(self) -> bool:
        """The shards hold token sequences instead of images."""
        return self.token_length > 0

    @property
    def channels(self) -> int:
        return 1 if self.mode == "L" else 3

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def shard_sizes(self) -> dict[str, int]:
        return {s.name: s.num_samples for s in self.shards}

    def save(self, path: str) -> None:
        atomic_write_json(path, asdict(self))  # a crash mid-pack leaves no manifest, so training refuses the folder

    @classmethod
    def from_dict(cls, data: dict, where: str) -> "Manifest":
        found = data.get("format") if isinstance(data, dict) else None
        if found != FORMAT:
            raise UserError(f"{where} is not a ganscale shard manifest (format {found!r}, expected {FORMAT!r}); "
                            "create shards with `ganscale data pack`")
        try:
            shards = [ShardEntry(**s) for s in data["shards"]]
            rest = {k: v for k, v in data.items() if k != "shards"}
            return cls(shards=shards, **rest)
        except (KeyError, TypeError) as e:
            raise UserError(f"{where}: malformed manifest ({e}); re-create it with `ganscale data pack`") from None

    @classmethod
    def load(cls, url: str) -> "Manifest":
        """Read a manifest from a local path, or any URL webdataset can open (pipe:, http:)."""
        try:
            if is_local(url):
                with open(local_path(url), "rb") as f:
                    raw = f.read()
            else:
                from webdataset.gopen import gopen

                stream = gopen(url, "rb")
                try:
                    raw = stream.read()
                finally:
                    stream.close()
        except (OSError, ValueError) as e:
            raise UserError(f"cannot read the shard manifest {url}: {e}; pass data.shards.manifest=PATH "
                            f"(written by `ganscale data pack` as {MANIFEST_NAME})") from None
        try:
            data = json.loads(raw)
        except ValueError as e:
            raise UserError(f"{url}: not valid JSON ({e}); re-create it with `ganscale data pack`") from None
        return cls.from_dict(data, url)


def is_local(url: str) -> bool:
    return url.startswith("file:") or not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", url)


def local_path(url: str) -> str:
    if url.startswith("file:"):
        from urllib.parse import urlparse
        from urllib.request import url2pathname

        return url2pathname(urlparse(url).path)
    return url


def shard_name(url: str) -> Optional[str]:
    """The shard's file name inside a URL or `pipe:` command (the last `*.tar` token)."""
    names = re.findall(r"([^/\s'\"]+\.tar(?:\.gz)?)", url)
    return names[-1] if names else None
