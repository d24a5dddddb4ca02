"""Files that are complete or absent: atomic writes of files, directories and JSON, and file hashes;
and the one place torch files are read (``weights_only=True``: nothing in them is ever unpickled).

Every file synthaug writes goes through here: a temporary name beside the target, renamed over it
only when the block succeeded, so an interrupted run never leaves a half-written file behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary directory beside ``path``; it replaces ``path`` only if the block succeeds."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_json(path: str | Path, obj: Any) -> Path:
    """``obj`` as indented JSON at ``path``, atomically (values JSON cannot hold are written as strings)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, default=str))
    return Path(path)


def file_hash(path: str | Path) -> str:
    """sha256 of the file's bytes (recorded in run manifests)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_torch_file(path: str | Path, expected: str) -> Any:
    """A torch file's tensors and plain containers (``torch.load(weights_only=True)``), or a one-line
    :class:`SynthaugError` naming ``path``: a file holding other pickled objects (which could run code
    when unpickled) is refused, never unpickled; an unreadable one names what was ``expected``."""
    import pickle

    import torch

    from synthaug.errors import SynthaugError

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "global" in str(exc).lower():  # torch's restricted unpickler met a class or function it won't load
            raise SynthaugError(f"{path}: refused: it holds pickled Python objects besides tensors, which "
                                f"synthaug never unpickles (they could run code); expected {expected}") from exc
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise SynthaugError(f"{path}: not a readable {expected} ({first[:200]})") from exc
    except Exception as exc:  # corrupt, truncated, not a torch file
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise SynthaugError(f"{path}: not a readable {expected} ({first[:200]})") from exc
