"""Read a checkpoint that may come from anywhere without running code from it.

A `.ckpt` is a pickle: `torch.load(weights_only=False)` would call whatever a crafted file names
(`os.system`, ...). ganscale's checkpoints hold tensors and plain types only (dicts, lists,
numbers, strings: the config and metadata are stored as dicts, the RNG states as tensors and
tuples), so every reader loads them with `weights_only=True`, PyTorch's restricted unpickler, and
a file that needs more is refused, not run:

    ganscale sample shared.ckpt ...          # -> exit 2: "... refuses to unpickle posix.system ..."

`load_checkpoint_file` is the one place that does it: `ganscale sample|eval|export`, resume and
rollback (through `AtomicCheckpointIO`), and `python -m ganscale.distributed.convert`.
`load_tagged_safetensors` reads ganscale's own safetensors files (the text encoder pair, the
captioned-digits judge): tensors and string metadata, checked against the file's format tag.
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from typing import Any, Optional

import torch

from ganscale.errors import UserError

_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def load_checkpoint_file(path: str, map_location: Optional[Any] = "cpu", mmap: bool = False) -> dict:
    """The dict stored in `path`, loaded with `weights_only=True`; a file holding anything else
    than tensors and plain types, or one that is not a complete checkpoint, is a UserError.
    `mmap`: tensors stay on disk until read (a caller that only needs names and shapes)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UserError(f"checkpoint {path} does not exist; pass a run directory or a .ckpt file")
    if os.path.getsize(path) == 0:
        raise UserError(f"checkpoint {path} is empty (0 bytes): its write never finished; "
                        "pass a complete ganscale checkpoint")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as e:
        found = unsupported_global(e)
        if found is None:  # random bytes, a plain pickle, a pickle opcode the restricted loader lacks
            raise UserError(f"cannot read checkpoint {path}: it is not a PyTorch checkpoint that loads without "
                            "unpickling code (random bytes, or a raw pickle); pass a ganscale checkpoint") from None
        raise UserError(
            f"refusing to load {path}: it asks to unpickle the Python object {found}, which could run "
            "code. ganscale checkpoints hold tensors and plain types only; do not use this file, or get the "
            "generator as safetensors (`ganscale export`) from its author") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError, IndexError,
            TypeError, AttributeError, UnicodeDecodeError) as e:  # truncated, random bytes, a foreign zip
        raise UserError(f"cannot read checkpoint {path}: it is not a complete PyTorch checkpoint "
                        f"({_first_line(e)}); pass a complete ganscale checkpoint") from None
    if not isinstance(obj, dict):
        raise UserError(f"{path} holds a {type(obj).__name__}, not a ganscale checkpoint (a dict)")
    return obj


def load_tagged_safetensors(path: str, fmt: str, what: str, maker: str, device: Any = "cpu"
                            ) -> tuple[dict, dict]:
    """(tensors, string metadata) of the safetensors file `path` whose metadata "format" is `fmt`.
    `what` names the kind of file in errors ("ganscale text encoder"), `maker` the command that
    writes one ("ganscale text train CONFIG")."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    if not os.path.isfile(path):
        raise UserError(f"{what} {path} does not exist; make one with `{maker}`")
    try:
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(path, device=str(device))
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"{path} is not a readable safetensors file ({e}); make it again with `{maker}`") from None
    if meta.get("format") != fmt:
        raise UserError(f"{path} is not a {what} (format {meta.get('format')!r}, expected {fmt!r}); pass the "
                        f"file written by `{maker}`")
    return tensors, meta


def unsupported_global(e: BaseException) -> Optional[str]:
    """The global (module.name) that PyTorch's restricted unpickler refused, if that is what `e` says."""
    found = _GLOBAL.search(str(e))
    return found.group(1) if found else None


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    first = re.sub(r"^\[enforce fail at [^\]]*\]\s*\.?\s*", "", text[0]) if text else ""
    first = first.split(". ")[0][:160]  # torch's zip errors go on with advice of their own
    return f"{type(e).__name__}: {first}" if first else type(e).__name__
