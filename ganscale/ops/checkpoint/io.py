"""A Lightning CheckpointIO plugin that writes checkpoints atomically and marks them complete.

    write  <dir>/.iter_N.ckpt.tmp-PID  ->  flush + fsync  ->  rename to <dir>/iter_N.ckpt
           ->  fsync <dir>  ->  write the marker iter_N.ckpt.complete (atomically, too)

Readers (resume, rollback, `ganscale sample`) only take checkpoints that have a marker, so a
process killed while writing leaves the previous checkpoint as the newest usable one. Loading is
always `weights_only=True` (ganscale.utils.safe_load): a checkpoint never runs code.
"""

from __future__ import annotations

import os
from typing import Any, Optional

from lightning.pytorch.plugins.io import TorchCheckpointIO

from ganscale.errors import UserError
from ganscale.ops.checkpoint import store
from ganscale.utils.safe_load import load_checkpoint_file
from ganscale.utils.files import atomic_torch_save


def checkpoint_meta(checkpoint: dict) -> dict:
    """What the marker records about a checkpoint (read by pruning and best-checkpoint selection)."""
    core = checkpoint.get("ganscale", {})
    ops = checkpoint.get("ganscale_ops", {})
    return {"iteration": int(core.get("iteration", -1)), "metrics": ops.get("metrics") or {}}


class AtomicCheckpointIO(TorchCheckpointIO):
    """TorchCheckpointIO with atomic writes, completion markers and refusal of incomplete files."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options: Optional[Any] = None) -> None:
        path = os.fspath(path)
        nbytes = atomic_torch_save(checkpoint, path, durable=True)
        store.write_marker(path, {"bytes": nbytes, **checkpoint_meta(checkpoint)})

    def load_checkpoint(self, path, map_location: Optional[Any] = None, weights_only: Optional[bool] = None):
        path = os.fspath(path)
        if not store.is_complete(path):
            raise UserError(f"checkpoint {path} has no completion marker ({os.path.basename(store.marker_path(path))}): "
                            "its write was interrupted; resume from an older checkpoint of the same folder")
        # Always weights_only: a resume or rollback may read a checkpoint copied from elsewhere, and
        # ganscale's checkpoints need nothing else (Lightning would pass None, or False if asked).
        return load_checkpoint_file(path, map_location=map_location)

    def remove_checkpoint(self, path) -> None:
        store.remove(os.fspath(path))
