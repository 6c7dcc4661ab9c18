"""Atomic file writes: a reader (or a crash) never sees half a file.

Every write goes to a hidden temporary name beside the target (`.<name>.tmp-<pid>`, same file
system, so the final rename is atomic) and replaces the target in one `os.replace`. With
`durable=True` the bytes are fsynced before the rename and the folder after it, so a power cut
leaves either the old file or the whole new one (checkpoints, their completion markers).

    with atomic_path("out/model.pt") as tmp:
        torch.save(obj, tmp)
    atomic_write_json("run/final_metrics.json", {"fid": 12.3})

No torch at import time: loading a config writes through here and must not import torch.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from typing import Any, Iterator

TEMP_MARK = ".tmp-"
"""Part of every temporary name; `.<name>.tmp-*` globs find what a killed writer left behind."""


def temp_path(path: str) -> str:
    """The temporary name a write of `path` uses (hidden, in the same folder, per process)."""
    folder, name = os.path.split(os.fspath(path))
    return os.path.join(folder, f".{name}{TEMP_MARK}{os.getpid()}")


def fsync_dir(path: str) -> None:
    """Make a rename or a new file in folder `path` durable (the directory entry itself)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems do not support fsync on directories
        pass
    finally:
        os.close(fd)


def fsync_tree(path: str) -> int:
    """fsync every file under `path` (a file or a folder) and every folder in it; returns the bytes."""
    total = 0
    files = [path] if os.path.isfile(path) else [os.path.join(r, f) for r, _, fs in os.walk(path) for f in fs]
    for name in files:
        with open(name, "rb") as f:
            os.fsync(f.fileno())  # any descriptor of the file flushes all of its pages
        total += os.path.getsize(name)
    if os.path.isdir(path):
        for r, _, _ in os.walk(path):
            fsync_dir(r)
    return total


@contextmanager
def atomic_path(path: str, durable: bool = False) -> Iterator[str]:
    """Yield a temporary path beside `path` (its folder is created); when the block succeeds the
    temporary file replaces `path` in one rename, on error it is removed and `path` is left as it
    was. `durable`: fsync the file before the rename and the folder after it."""
    path = os.fspath(path)
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    tmp = temp_path(path)
    try:
        yield tmp
        if durable:
            fsync_tree(tmp)  # the bytes are on disk before the name points at them
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    if durable:
        fsync_dir(folder)


def atomic_write_text(path: str, text: str, durable: bool = False) -> None:
    with atomic_path(path, durable) as tmp, open(tmp, "w") as f:
        f.write(text)


def atomic_write_bytes(path: str, data: bytes, durable: bool = False) -> None:
    with atomic_path(path, durable) as tmp, open(tmp, "wb") as f:
        f.write(data)


def atomic_write_json(path: str, obj: Any, durable: bool = False, indent: int = 1) -> None:
    """`obj` as JSON (with a final newline)."""
    atomic_write_text(path, json.dumps(obj, indent=indent) + "\n", durable)


def atomic_torch_save(obj: Any, path: str, durable: bool = False) -> int:
    """`torch.save(obj)` written atomically; returns the bytes written."""
    import torch

    with atomic_path(path, durable) as tmp:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
        nbytes = os.path.getsize(tmp)
    return nbytes
