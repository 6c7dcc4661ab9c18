"""Atomic full-state checkpoints: the folder layout and markers (store), the Lightning
CheckpointIO plugin (io), per-rank RNG states (rng) and the callback (callback)."""

from ganscale.ops.checkpoint.store import checkpoint_path, latest_checkpoint, list_checkpoints

__all__ = ["checkpoint_path", "latest_checkpoint", "list_checkpoints"]
