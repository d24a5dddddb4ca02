"""Files that are complete or absent: atomic writes of files, directories and JSON, and file hashes;
and the one place torch files are read (``weights_only=True``: nothing in them is ever unpickled).

Every file synthaug writes goes through here: a temporary name beside the target, renamed over it
only when the block succeeded, so an interrupted run never leaves a half-written file behind.

One writer per output: :func:`hold` takes an exclusive lock (``flock``) on ``.NAME.lock`` beside the
output for as long as a command writes it (the commands take it when they start, before any work);
a second run given the same output refuses in one line naming the first run's process. Because only
the holder of the lock writes, any temporary of that output it finds (``.NAME.tmpPID``) was left by a
run that was killed, and is removed; the lock file goes when the holder is done. The kernel drops the
lock of a killed process, so a rerun is never blocked by a dead one.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

#: The locks this process holds: resolved output path -> (open lock file, how many holds)
_HELD: dict[Path, list] = {}


def lock_path(path: str | Path) -> Path:
    """The lock file of output ``path`` (beside it, so replacing a directory output keeps it)."""
    path = Path(path)
    return path.with_name(f".{path.name}.lock")


@contextmanager
def hold(path: str | Path, wait: bool = False, shared: bool = False) -> Iterator[None]:
    """This process is the one writer of output ``path`` while the block runs (re-entrant); another
    run holding it is a one-line :class:`SynthaugError` naming its process, or with ``wait`` (shared
    caches, which any run may fill) is waited for. Temporaries of ``path`` left by killed runs are
    removed on entry.

    ``shared``: one of several cooperating writers (the shards of one experiment grid, which claim
    what is inside ``path`` item by item): any number hold it together, a sole writer is refused
    while they do (and they while it does), and nothing inside is swept as a dead run's."""
    import fcntl

    from synthaug.errors import SynthaugError
    from synthaug.kit.distributed import main_process

    path = Path(path).absolute()
    # Under torchrun rank 0 is the one writer of outputs; the other ranks write nothing. A shared cache
    # (wait) is taken by every rank: a rank filling it without the lock would race the one filling it.
    if not main_process() and not wait:
        yield
        return
    if path in _HELD:
        _HELD[path][1] += 1
        try:
            yield
        finally:
            _HELD[path][1] -= 1
        return
    created = [d for d in (path.parent, *path.parent.parents) if not d.exists()]  # removed again if left empty
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = lock_path(path)
    while True:
        path.parent.mkdir(parents=True, exist_ok=True)  # again: the holder we waited for may have removed it
        handle = open(lock, "a+")
        try:
            fcntl.flock(handle, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if wait else fcntl.LOCK_NB))
        except OSError:
            handle.seek(0)
            owner = handle.read().strip() or "unknown"
            handle.close()
            _remove_if_empty(created)
            raise SynthaugError(f"{path} is being written by another synthaug run (process {owner}); wait for it "
                                f"to finish or choose another output") from None
        if _still_there(handle, lock):
            break
        # The holder we waited for removed the lock file as it let go: a run arriving since may hold a new
        # one at the same path. This lock is of a file no longer there; take the path's lock again.
        handle.close()
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    _HELD[path] = [handle, 1]
    try:
        if not shared:  # a shared holder's partners may be writing temporaries inside right now
            remove_stale_temporaries(path)
        yield
    finally:
        del _HELD[path]
        try:
            if shared:  # the last of the shared holders removes the lock file
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            lock.unlink()
        except OSError:
            pass
        handle.close()  # releases the lock
        _remove_if_empty(created)


def _still_there(handle, lock: Path) -> bool:
    """Whether the locked file ``handle`` is still the file at ``lock`` (not removed or replaced since)."""
    try:
        return os.fstat(handle.fileno()).st_ino == os.stat(lock).st_ino
    except FileNotFoundError:
        return False


def _remove_if_empty(directories: list[Path]) -> None:
    """Remove the directories :func:`hold` created (deepest first) where nothing was written into them."""
    for directory in directories:
        try:
            directory.rmdir()
        except OSError:
            return


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Remove the temporaries of output ``path`` other than this process's own (``.NAME.tmpPID``, files
    or directories), and for a directory output every temporary and lock file inside it. Call it only
    while holding ``path`` (:func:`hold`): then they are a killed run's."""
    path = Path(path)
    removed = []
    if not path.parent.is_dir():
        return removed
    candidates = list(path.parent.glob(f".{_glob_escape(path.name)}.tmp*"))
    if path.is_dir() and not path.is_symlink():  # inside a directory output only its writer writes, too
        candidates += [c for c in path.rglob(".*.tmp*") if c.name.rsplit(".tmp", 1)[-1].isdigit()]
        candidates += [c for c in path.rglob(".*.lock") if c.absolute().with_name(c.name[1:-5]) not in _HELD]
    for stale in candidates:
        if stale.name.endswith(".lock"):
            stale.unlink(missing_ok=True)
            removed.append(stale)
            continue
        suffix = stale.name.rsplit(".tmp", 1)[-1]
        if stale.name.endswith(f".tmp{os.getpid()}") or not suffix.isdigit() or not stale.exists():
            continue
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)
        removed.append(stale)
    return removed


def _glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


#: What a full disk (or a file-size or quota limit) says, as errno values and as text (h5py and
#: other libraries sometimes keep only the text).
DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
DISK_FULL_TEXTS = ("no space left on device", "file too large", "disk quota exceeded")


def disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it was raised from) says the disk or a size limit is full."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
            return True
        if any(text in str(exc).lower() for text in DISK_FULL_TEXTS):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


@contextmanager
def _disk_full_is_an_error(path: Path) -> Iterator[None]:
    """A write that fills the disk becomes one line naming ``path`` (the temporary is removed by the caller)."""
    from synthaug.errors import SynthaugError

    try:
        yield
    except SynthaugError:
        raise
    except Exception as exc:
        if not disk_full(exc):
            raise
        raise SynthaugError(f"{path}: could not write: the disk is full or a file-size limit was reached "
                            f"(nothing was replaced; free some space and run again)") from exc


class GuardedFile(io.RawIOBase):
    """A file for HDF5 to write through (``h5py.File(GuardedFile(path), "w")``) that keeps a full disk
    from HDF5: HDF5 handles a failed write badly (its file cannot be closed again, and freeing it
    crashes the interpreter). The first write that fails for want of space is recorded in ``error``
    and it and every later write are skipped while HDF5 is told they succeeded; the writer checks
    :meth:`check` after each piece, so it stops early, lets HDF5 close normally, and raises then."""

    def __init__(self, path: str | Path):
        super().__init__()
        self._fh = open(path, "w+b", buffering=0)
        self.error: OSError | None = None

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()

    def readinto(self, buffer) -> int:
        return self._fh.readinto(buffer)

    def _guard(self, action, fallback):
        if self.error is None:
            try:
                return action()
            except OSError as exc:
                if not disk_full(exc):
                    raise
                self.error = exc
        return fallback()

    def write(self, data) -> int:
        size = len(memoryview(data).cast("B"))
        return self._guard(lambda: self._fh.write(data), lambda: (self._fh.seek(size, 1), size)[1])

    def truncate(self, size: int | None = None) -> int:
        return self._guard(lambda: self._fh.truncate(size), lambda: size if size is not None else self.tell())

    def flush(self) -> None:
        if not self._fh.closed:
            self._guard(self._fh.flush, lambda: None)

    def close(self) -> None:
        if not self._fh.closed:
            self._guard(self._fh.close, self._fh.close)
        super().close()

    def check(self) -> None:
        """Raise the recorded disk-full error (an ``OSError``), if any."""
        if self.error is not None:
            raise OSError(self.error.errno, f"{self.error.strerror or self.error}")


@contextmanager
def atomic_path(path: str | Path, wait: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.
    Holds ``path`` (:func:`hold`, ``wait`` as there) meanwhile, unless this process already does."""
    path = Path(path)
    with hold(path, wait):
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        try:
            with _disk_full_is_an_error(path):
                yield tmp
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary directory beside ``path``; it replaces ``path`` only if the block succeeds.
    Holds ``path`` (:func:`hold`) meanwhile, unless this process already does."""
    path = Path(path)
    with hold(path):
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            with _disk_full_is_an_error(path):
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


def save_torch_file(obj: Any, path: str | Path) -> Path:
    """``torch.save(obj)`` to ``path`` through a Python file, so that a full disk surfaces as the
    ``OSError`` it is (torch's own writer, given a path, reports it as a bare ``RuntimeError``) and
    :func:`atomic_path` turns it into one line. Write into an atomic temporary, not the real name."""
    import torch

    with open(path, "wb") as fh:
        torch.save(obj, fh)
    return Path(path)


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
