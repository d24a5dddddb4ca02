"""Test-only: in a torchrun worker of rank other than 0, any file write is an error.

tests/test_torchrun.py puts this folder first on PYTHONPATH, so every Python process it starts
imports it. Under torchrun rank 0 alone writes outputs (docs/scaling.md); this audit hook turns a
write by another rank into a ``PermissionError`` at the write itself and prints a marker line on
stderr (the test looks for it too, in case the product caught the error). Python's audit events
see every write made through Python: ``open``/``os.open`` in a writing mode (``pathlib``, ``PIL``,
HDF5 stores through ``GuardedFile``, ``torch.save`` through ``save_torch_file``), renames, new
directories and removals. Paths under ``/dev/`` and under the prefixes in ``$RANK0_WRITES_ALLOW``
(``os.pathsep``-separated: the shared data cache, which any rank may fill) are allowed, and so are
anything in a ``__pycache__`` folder (bytecode, numba's compiled kernels), making a directory
that exists already (it changes nothing), and scratch files made through the ``tempfile`` module
(libraries probe the temporary directory with one; synthaug writes its outputs under ``.NAME.tmpPID``
names, never through ``tempfile``).
"""

import os
import sys

MARKER = "rank0-writes: rank"
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_TWO_PATHS = {"os.rename", "os.symlink", "os.link", "shutil.copyfile", "shutil.copytree", "shutil.move"}
_MUTATING = _TWO_PATHS | {"os.mkdir", "os.remove", "os.rmdir", "shutil.rmtree", "os.truncate", "os.chmod", "os.utime"}


def _through_tempfile() -> bool:
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_filename.endswith(os.sep + "tempfile.py"):
            return True
        frame = frame.f_back
    return False


def _allowed(path) -> bool:
    if isinstance(path, int):  # an open file descriptor: its opening was checked
        return True
    path = os.path.abspath(os.fsdecode(path))
    if f"{os.sep}__pycache__{os.sep}" in path + os.sep:
        return True
    prefixes = ["/dev/", *filter(None, os.environ.get("RANK0_WRITES_ALLOW", "").split(os.pathsep))]
    return any(path == p.rstrip("/") or path.startswith(p.rstrip("/") + "/") for p in prefixes)


def _writes(event: str, args: tuple) -> list:
    """The paths ``event`` writes, or [] for events that write nothing."""
    if event == "open":
        path, mode, flags = args
        writing = any(c in mode for c in "wax+") if isinstance(mode, str) else bool((flags or 0) & _WRITE_FLAGS)
        return [path] if writing and path is not None else []
    if event in _TWO_PATHS:  # source and destination: both change
        return [a for a in args[:2] if isinstance(a, (str, bytes, os.PathLike))]
    if event == "os.mkdir" and os.path.isdir(args[0]):  # makedirs(exist_ok=True) of a folder that is there
        return []
    if event in _MUTATING:
        return [args[0]]
    return []


def _hook(event: str, args: tuple) -> None:
    if event != "open" and event not in _MUTATING:
        return
    for path in _writes(event, args):
        if not _allowed(path) and not _through_tempfile():
            rank = os.environ.get("RANK")
            import traceback

            where = "".join(traceback.format_stack(sys._getframe(1), limit=6))
            os.write(2, f"{MARKER} {rank} wrote {os.fsdecode(path)!s} ({event}), from\n{where}".encode())
            raise PermissionError(f"rank {rank} may not write {path} (only rank 0 writes under torchrun)")


if os.environ.get("RANK", "0") not in ("", "0"):
    sys.addaudithook(_hook)
