"""Ctrl-C (SIGINT) in the middle of a long command: exit code 130, one line on stderr saying how to go
on, and no temporary file or directory left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def test_ctrl_c_exits_130_with_one_line_and_leaves_no_temporary_file(tmp_path):
    out = tmp_path / "demo"
    env = {**os.environ, "SYNTHAUG_CACHE": str(tmp_path / "cache")}
    command = [sys.executable, "-c", "from synthaug.cli import main; main()", "--quiet", "demo", "--preset", "tiny",
               "--out", str(out)]
    # SIGINT at its default in the child: a test run started in the background by a non-interactive
    # shell inherits SIGINT ignored, and Python then installs no Ctrl-C handler at all
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 300
    # interrupt once the experiment is under way (its directory claimed), well before it can finish
    while not (out / "experiment.json").is_file() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert process.poll() is None, process.communicate()
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("synthaug: interrupted; nothing half-written was left.") and "Traceback" not in stderr
    leftovers = [p for p in Path(tmp_path).rglob("*") if ".tmp" in p.name]
    assert leftovers == []
