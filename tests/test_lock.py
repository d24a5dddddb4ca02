"""The one-writer lock's waiting branch (synthaug.kit.files.hold(..., wait=True)): a shared cache that
another run is filling is waited for, then used (docs/reliability.md, "One writer").

No timing: the test sees that the second process waits by finding it in the kernel's table of blocked
lock requests (/proc/locks, a "->" entry with its process id on the lock file's inode), and lets it go
by releasing the lock. Timeouts are only there so that a broken lock fails instead of hanging.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synthaug.kit.files import hold, lock_path

pytestmark = pytest.mark.skipif(not Path("/proc/locks").is_file(), reason="needs Linux's /proc/locks")

#: A second run that fills a shared output: it waits for the lock, then writes the output only if the
#: first run has not (as the ctsim cache does), and says which it did.
WAITER = """
import sys
from pathlib import Path
from synthaug.kit.files import atomic_path, hold

out = Path(sys.argv[1])
print("taking", flush=True)
with hold(out, wait=True):
    if out.is_file():
        print("used", out.read_text(), flush=True)
    else:
        with atomic_path(out, wait=True) as tmp:
            tmp.write_text("filled by the waiter")
        print("filled", flush=True)
"""


#: A first run that holds the entry until it is killed.
HOLDER = """
import sys, time
from synthaug.kit.files import hold

with hold(sys.argv[1], wait=True):
    print("held", flush=True)
    time.sleep(600)
"""


def blocked_on(pid: int, lock: Path) -> bool:
    """Whether process ``pid`` is blocked waiting for a lock on file ``lock`` (a "->" line of /proc/locks)."""
    inode = os.stat(lock).st_ino
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if (len(fields) > 5 and fields[1] == "->" and int(fields[5]) == pid
                and int(fields[6].rsplit(":", 1)[1]) == inode):
            return True
    return False


def wait_until(condition, process, what: str, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit  # a safety bound only: the condition is an event, not a duration
    while not condition():
        assert process.poll() is None, f"the waiter ended before {what}: {process.communicate()}"
        assert time.monotonic() < deadline, f"no {what} within {limit} s"
        time.sleep(0.01)


def start_waiter(out: Path, **env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WAITER, str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "SYNTHAUG_QUIET": "1", **env})


@pytest.mark.parametrize("rank", ["", "1"], ids=["one-process", "torchrun-rank-1"])
def test_a_run_that_finds_a_shared_cache_being_filled_waits_then_uses_it(tmp_path, rank):
    """The first run (this test) holds the cache entry; the second blocks on its lock, still blocked
    while the first fills the entry, and once the first is done it uses the entry instead of filling
    it again. Under torchrun every rank waits for a shared cache (rank 1 of a 2-process run here):
    only outputs are rank 0's alone, and a rank that filled the cache beside another would race it."""
    out = tmp_path / "cache" / "entry.bin"
    extra = {"RANK": rank, "WORLD_SIZE": "2"} if rank else {}
    with hold(out, wait=True):
        waiter = start_waiter(out, **extra)
        try:
            assert waiter.stdout.readline().strip() == "taking"
            wait_until(lambda: blocked_on(waiter.pid, lock_path(out)), waiter, "blocked lock request")
            out.write_text("filled by the first run")  # the first run fills the entry while the waiter waits
            assert blocked_on(waiter.pid, lock_path(out)) and waiter.poll() is None
        except BaseException:
            waiter.kill()
            raise
    stdout, stderr = waiter.communicate(timeout=60)
    assert waiter.returncode == 0, stderr
    assert stdout.strip() == "used filled by the first run"  # waited, then used the first run's entry
    assert out.read_text() == "filled by the first run"
    assert sorted(p.name for p in out.parent.iterdir()) == ["entry.bin"]  # no lock file or temporary left


def test_a_waiter_whose_first_run_died_fills_the_entry_itself(tmp_path):
    """The first run is killed while holding the entry (the kernel drops its lock): the waiter goes on,
    finds nothing, and fills the entry itself."""
    out = tmp_path / "cache" / "entry.bin"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        waiter = start_waiter(out)
        assert waiter.stdout.readline().strip() == "taking"
        wait_until(lambda: blocked_on(waiter.pid, lock_path(out)), waiter, "blocked lock request")
    finally:
        holder.kill()
        holder.wait()
    stdout, stderr = waiter.communicate(timeout=60)
    assert waiter.returncode == 0, stderr
    assert stdout.strip() == "filled" and out.read_text() == "filled by the waiter"
    assert sorted(p.name for p in out.parent.iterdir()) == ["entry.bin"]


#: A run that holds the output until told to let go (a line on its stdin).
HOLD_UNTIL_TOLD = """
import sys
from synthaug.kit.files import hold

print("taking", flush=True)
with hold(sys.argv[1], wait=True):
    print("held", flush=True)
    sys.stdin.readline()
"""


def test_a_waiter_that_wakes_on_a_removed_lock_file_takes_the_path_again(tmp_path):
    """The holder removes its lock file as it lets go. A waiter blocked on that file wakes holding a lock
    of a file no longer there; a third run arriving then creates a new file at the path. Without care
    both would hold the output at once (shards of one grid measuring the same thing twice): the waiter
    takes the path's lock again, and the third run waits for it."""
    out = tmp_path / "shared" / "entry.bin"

    def start():
        return subprocess.Popen([sys.executable, "-c", HOLD_UNTIL_TOLD, str(out)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "SYNTHAUG_QUIET": "1"})

    second = third = None
    try:
        with hold(out, wait=True):
            second = start()
            assert second.stdout.readline().strip() == "taking"
            wait_until(lambda: blocked_on(second.pid, lock_path(out)), second, "blocked lock request")
        assert second.stdout.readline().strip() == "held"  # woke after this run removed its lock file
        third = start()
        assert third.stdout.readline().strip() == "taking"
        wait_until(lambda: lock_path(out).is_file() and blocked_on(third.pid, lock_path(out)), third,
                   "the third run waiting for the second")
        second.stdin.write("go\n")
        second.stdin.flush()
        assert third.stdout.readline().strip() == "held"
        third.stdin.write("go\n")
        third.stdin.flush()
        for process in (second, third):
            assert process.wait(timeout=60) == 0, process.stderr.read()
    finally:
        for process in (second, third):
            if process is not None and process.poll() is None:
                process.kill()
