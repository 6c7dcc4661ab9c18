"""`ganscale data pack`: image folders, MNIST IDX files and image-caption JSONL into tar shards."""

from ganscale.data.pack.encode import EncodeOptions
from ganscale.data.pack.sources import Item, Source, open_source
from ganscale.data.pack.writer import PackOptions, pack, sha256_file

__all__ = ["EncodeOptions", "Item", "PackOptions", "Source", "open_source", "pack", "sha256_file"]
