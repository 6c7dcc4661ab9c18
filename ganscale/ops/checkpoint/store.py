"""The checkpoint folder of a run: names, completion markers, listing, pruning.

    <run>/checkpoints/iter_00001000.ckpt            the checkpoint (a file, or a folder for
                                                    strategies that shard it, e.g. DeepSpeed)
    <run>/checkpoints/iter_00001000.ckpt.complete   JSON marker: iteration, bytes, metrics
    <run>/checkpoints/.iter_00001000.ckpt.tmp-PID   a write in progress (or one killed mid-way)

A checkpoint exists only once its marker does. The marker is written after the checkpoint
itself has been fsynced and renamed into place, so a process killed at any moment leaves
either a complete checkpoint or one that every reader ignores.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import time
from typing import Callable, Optional

from ganscale.utils.files import TEMP_MARK, atomic_write_json, fsync_dir, fsync_tree

MARKER_SUFFIX = ".complete"
_NAME = re.compile(r"^iter_(\d+)\.ckpt$")


def checkpoint_path(ckpt_dir: str, iteration: int) -> str:
    return os.path.join(ckpt_dir, f"iter_{iteration:08d}.ckpt")


def marker_path(path: str) -> str:
    return str(path) + MARKER_SUFFIX


def iteration_of(path: str) -> int:
    m = _NAME.match(os.path.basename(str(path)))
    return int(m.group(1)) if m else -1


def is_complete(path: str) -> bool:
    return os.path.exists(path) and os.path.isfile(marker_path(path))


def read_marker(path: str) -> dict:
    try:
        with open(marker_path(path)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def write_marker(path: str, meta: dict) -> None:
    """Commit `path`: the marker is itself written atomically (temp, fsync, rename, fsync dir)."""
    atomic_write_json(marker_path(path), {"time": time.time(), **meta}, durable=True)


def commit(path: str, meta: dict) -> None:
    """Mark a checkpoint written by someone else (e.g. a folder every rank wrote into) complete."""
    nbytes = fsync_tree(path)
    fsync_dir(os.path.dirname(path) or ".")
    write_marker(path, {"bytes": nbytes, **meta})


def remove(path: str) -> None:
    """Delete a checkpoint: the marker first, so a crash in between leaves nothing half-valid."""
    if os.path.exists(marker_path(path)):
        os.remove(marker_path(path))
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.exists(path):
        os.remove(path)


def _all_named(ckpt_dir: str) -> list[str]:
    paths = [p for p in glob.glob(os.path.join(ckpt_dir, "iter_*.ckpt")) if iteration_of(p) >= 0]
    return sorted(paths, key=iteration_of)


def list_checkpoints(ckpt_dir: str) -> list[str]:
    """Complete checkpoints, oldest first."""
    return [p for p in _all_named(ckpt_dir) if is_complete(p)]


def latest_checkpoint(ckpt_dir: str, at_most: Optional[int] = None) -> Optional[str]:
    """The newest complete checkpoint (with iteration <= at_most if given), or None."""
    ckpts = [p for p in list_checkpoints(ckpt_dir) if at_most is None or iteration_of(p) <= at_most]
    return ckpts[-1] if ckpts else None


def best_checkpoint(ckpt_dir: str, metric: str, mode: str = "min") -> Optional[str]:
    """The complete checkpoint whose marker has the best `metric` (ties: the newest)."""
    scored = []
    for p in list_checkpoints(ckpt_dir):
        value = read_marker(p).get("metrics", {}).get(metric)
        if isinstance(value, (int, float)):
            scored.append((value if mode == "min" else -value, -iteration_of(p), p))
    return min(scored)[2] if scored else None


def clean_stale(ckpt_dir: str) -> list[str]:
    """Remove what interrupted writes left behind: temporary files, and checkpoints without a
    marker. Call it only when no write can be in progress (at the start of a run, rank 0)."""
    removed = []
    for p in glob.glob(os.path.join(ckpt_dir, f".iter_*{TEMP_MARK}*")):
        shutil.rmtree(p, ignore_errors=True) if os.path.isdir(p) else os.remove(p)
        removed.append(p)
    for p in _all_named(ckpt_dir):
        if not is_complete(p):
            remove(p)
            removed.append(p)
    return removed


def prune(ckpt_dir: str, keep_last: int, best_metric: Optional[str] = None, best_mode: str = "min",
          keep: tuple[str, ...] = (), remove_fn: Callable[[str], None] = remove) -> list[str]:
    """Delete complete checkpoints except the newest `keep_last`, the best by `best_metric` and
    the paths in `keep` (e.g. the one a rollback may need). `remove_fn` deletes one checkpoint
    (the strategy's, which knows what it keeps beside the file, e.g. DeepSpeed's shards)."""
    ckpts = list_checkpoints(ckpt_dir)
    protected = set(ckpts[-keep_last:]) | {os.path.abspath(k) for k in keep if k}
    protected = {os.path.abspath(p) for p in protected}
    if best_metric:
        best = best_checkpoint(ckpt_dir, best_metric, best_mode)
        if best:
            protected.add(os.path.abspath(best))
    removed = []
    for p in ckpts:
        if os.path.abspath(p) not in protected:
            if os.path.exists(marker_path(p)):
                os.remove(marker_path(p))  # first: a crash half-way leaves an ignored file, not a broken checkpoint
            remove_fn(p)
            removed.append(p)
    return removed
