"""One grid in several processes: ``experiment run --shard I/N`` (a share of the cells, beside the other
shares' processes in the same directory) and ``--workers N`` (the N shards as local processes). Each fit,
store and cell is claimed through its lock; the results are those of one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _specs import DDPM, tiny_spec
from click.testing import CliRunner

from synthaug import SynthaugError
from synthaug.cli import main
from synthaug.experiments.runner import parse_shard, shard_cells
from synthaug.experiments.spec import grid, load_spec


# One seed: the two ddpm arms (guidance 1 and 4) fall into different shards and need the same fit, so
# one shard fits while the other waits for it.
def write(path: Path) -> Path:
    return tiny_spec(path, DDPM.replace("GUIDANCE", "[1, 4]"), name="sharded")


def command(*args) -> list[str]:
    return [sys.executable, "-m", "synthaug", "--quiet", "experiment", "run", *map(str, args)]


def test_the_shards_partition_the_grid_and_a_bad_shard_is_refused(tmp_path):
    write(tmp_path / "s.toml")
    cells = grid(load_spec(tmp_path / "s.toml", seeds=3))
    shares = [shard_cells(cells, (i, 4)) for i in range(1, 5)]
    assert sorted(c.key for share in shares for c in share) == sorted(c.key for c in cells)
    assert [len(s) for s in shares] == [3, 2, 2, 2]
    assert {c.seed for c in shares[0]} == {0, 1, 2}  # the seeds vary fastest: a share fits several seeds
    for bad in ("0/2", "3/2", "1", "a/b"):
        with pytest.raises(SynthaugError, match=f"--shard {bad}: expected I/N with 1 <= I <= N"):
            parse_shard(bad)
    result = CliRunner().invoke(main, ["--quiet", "experiment", "run", str(tmp_path / "s.toml"), "--out",
                                       str(tmp_path / "o"), "--shard", "1/2", "--workers", "2"])
    assert result.exit_code == 2 and "--shard and --workers: give one" in result.output


@pytest.mark.slow
def test_two_shards_in_two_processes_give_the_results_of_one(tmp_path):
    spec = write(tmp_path / "s.toml")
    env = {**os.environ, "SYNTHAUG_QUIET": "1", "OMP_NUM_THREADS": "1"}
    one = tmp_path / "one"
    subprocess.run(command(spec, "--out", one), env=env, check=True, timeout=600)
    sharded = tmp_path / "sharded"
    processes = [subprocess.Popen(command(spec, "--out", sharded, "--shard", f"{i}/2"), env=env,
                                  stderr=subprocess.PIPE) for i in (1, 2)]
    for process in processes:
        _, err = process.communicate(timeout=600)
        assert process.returncode == 0, err.decode()[-2000:]
    assert CliRunner().invoke(main, ["--quiet", "experiment", "report", str(sharded)]).exit_code == 0
    assert (sharded / "results.csv").read_bytes() == (one / "results.csv").read_bytes()
    assert len([p for p in (sharded / "fits").iterdir() if p.is_dir()]) == 1  # made once, waited for once
    stages = {s["name"] for s in json.loads((sharded / "experiment.json").read_text())["stages"]}
    assert {f"cell {c}--small--seed0" for c in ("duplicate", "ddpm-guidance1", "ddpm-guidance4")} <= stages
    assert not list(sharded.rglob(".*.lock"))

    workers = tmp_path / "workers"
    subprocess.run(command(spec, "--out", workers, "--workers", "2"), env=env, check=True, timeout=600)
    assert (workers / "results.csv").read_bytes() == (one / "results.csv").read_bytes()
    saved = json.loads((workers / "experiment.json").read_text())
    assert saved["seconds"] > 0 and "Total wall time" in (workers / "report.md").read_text()


def test_shards_hold_the_directory_together_and_a_run_of_the_whole_grid_is_refused_meanwhile(tmp_path):
    from synthaug.kit.files import hold, lock_path

    spec, out = write(tmp_path / "s.toml"), tmp_path / "out"
    env = {**os.environ, "SYNTHAUG_QUIET": "1"}
    partner = "from synthaug.kit.files import hold\nwith hold(__import__('sys').argv[1], shared=True): print('ok')"
    with hold(out, shared=True):  # as a shard does
        done = subprocess.run([sys.executable, "-c", partner, str(out)], env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.stdout.strip() == "ok", done.stderr  # another shard holds it too
        whole = subprocess.run(command(spec, "--out", out), env=env, capture_output=True, text=True, timeout=120)
        lines = [line for line in whole.stderr.splitlines() if line.strip()]
        assert whole.returncode == 2 and len(lines) == 1 and "is being written by another synthaug run" in lines[0]
        assert lock_path(out).is_file()
    assert not lock_path(out).exists()  # the last shared holder removed it
