"""WebDataset shards: the manifest, the shard spec, the deterministic stream and its data module."""
