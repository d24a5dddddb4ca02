"""Faults: a command killed anywhere and run again ends with the outputs of an uninterrupted run and
no temporary left; a second writer of the same output is refused; a full disk is a clear error that
leaves the previous output intact (docs/reliability.md).

Each kill is SIGKILL to the command's whole process group (nothing of it can clean up), at a point
the test waits for and then checks was reached with the work under way: "while loading" (the command
holds its output and is generating the built-in data set it reads: the cache's first temporary
exists, no output temporary yet), "mid-fit" (a trainable synthesizer's first per-epoch state is on
disk), "mid-write" (the output's temporary file exists). The rerun is the same command (``train``
adds ``--resume``, as its interruption message says). There is no kill "as soon as it started": a
command killed before it has taken its output has left nothing, so that point proved nothing the
others do not.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import make_kaggle_later

SYNTHAUG = str(Path(sys.executable).with_name("synthaug"))
pytestmark = pytest.mark.slow  # the kill and disk-full group: CI runs it; `pytest -m "not slow"` skips it


def env(**extra):
    return dict(os.environ, OMP_NUM_THREADS="1", SYNTHAUG_QUIET="1", PYTHONWARNINGS="ignore", **extra)


def cli(*args, ok=True, **extra):
    done = subprocess.run([SYNTHAUG, *map(str, args)], env=env(**extra), capture_output=True, text=True, timeout=600)
    assert (done.returncode == 0) == ok, done.stderr[-3000:]
    return done


def kill_when(args, ready, *, timeout=300, **extra) -> str:
    """Start ``synthaug ARGS``, SIGKILL its process group as soon as ``ready()`` is true; returns what was
    seen ("ready", or "finished" if the command ended first: the test then fails)."""
    process = subprocess.Popen([SYNTHAUG, *map(str, args)], env=env(**extra), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + timeout
    seen = "timeout"
    while time.monotonic() < deadline:
        if ready():
            seen = "ready"
            break
        if process.poll() is not None:
            seen = "finished"
            break
        time.sleep(0.005)
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    return seen


def temporaries(root: Path) -> list[str]:
    """Temporaries and lock files anywhere under ``root`` (none may outlive a command)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if ".tmp" in p.name or p.name.endswith(".lock"))


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def appears(directory: Path, pattern: str):
    return lambda: any(directory.glob(pattern))


@pytest.fixture(scope="module")
def kaggle(tmp_path_factory):
    """Kaggle-layout PNGs at 32 px: 40 covid, 1,500 normal, 60 viral (deficits of 1,460 and 1,440)."""
    return make_kaggle_later(tmp_path_factory.mktemp("faults"), counts=(40, 1500, 60, 0), size=32)


# ---- kill anywhere, lose nothing ----------------------------------------------------------------

SMALL_GAN = {
    "pix2pix": ["--synth-option", "ngf=8", "--synth-option", "ndf=8", "--synth-option", "batch_size=16",
                "--synth-option", "epochs=2", "--strategy", "covid=60,viral=60,normal=60"],
    "acgan": ["--synth-option", "ngf=8", "--synth-option", "ndf=8", "--synth-option", "batch_size=32",
              "--synth-option", "epochs=2", "--strategy", "covid=60,viral=60,normal=60"],
    # small networks on a 16x16x8 encoder grid, a quarter-width DenseNet-121 as C; 3 steps an epoch, and
    # one step of epoch 2 (max_steps=4): the kill after epoch 1's state has a step left to interrupt
    "xpgan": ["--synth-option", "preset=small", "--synth-option", "volume_shape=16x16x8", "--synth-option",
              "batch_size=8", "--synth-option", "epochs=2", "--synth-option", "max_steps=4",
              "--synth-option", "r1_gamma=0", "--synth-option", 'classifier_options={"width": 0.25}'],
}
#: the state file a trainable synthesizer's fit writes in --work-dir after each epoch
STATE = {"pix2pix": "train_state*.pt", "acgan": "train_state*.pt", "xpgan": "train_state*.pt"}


@pytest.mark.parametrize("synth, point", [
    ("duplicate", "mid-write"), ("augment", "mid-write"),
    ("pix2pix", "mid-fit"), ("acgan", "mid-fit"), ("drr", "mid-write"), ("xpgan", "mid-fit"),
])
def test_balance_killed_and_run_again_writes_the_uninterrupted_store(kaggle, tmp_path, synth, point):
    out, work = tmp_path / "run" / "s.h5", tmp_path / "run" / "work"
    data = ["--data", "kaggle", "--data-dir", kaggle, "--test-per-class", "5"]
    if synth in ("drr", "xpgan"):  # the built-in data's CT volumes: rendered, or projected by G
        data = ["--data", "ctsim", "--source-option", "preset=tiny", "--volumes", "ctsim", "--test-per-class", "1"]
    args = ["balance", "--synth", synth, *data, "--seed", "1", *SMALL_GAN.get(synth, [])]
    extra = ["--work-dir", work] if synth in SMALL_GAN else []
    cli(*args, *(["--work-dir", tmp_path / "ref-work"] if extra else []), "--out", tmp_path / "ref.h5")
    ready = {"mid-write": appears(out.parent, ".s.h5.tmp*"),
             "mid-fit": appears(work, STATE.get(synth, "none"))}[point]
    assert kill_when([*args, *extra, "--out", out], ready) == "ready"
    assert not out.exists()
    cli(*args, *extra, "--out", out)
    assert sha256(out) == sha256(tmp_path / "ref.h5")
    assert temporaries(tmp_path) == []


def test_fit_killed_mid_fit_resumes_to_the_uninterrupted_generator(kaggle, tmp_path):
    args = ["fit", "--synth", "pix2pix", "--data", "kaggle", "--data-dir", kaggle, "--test-per-class", "5",
            *SMALL_GAN["pix2pix"]]
    cli(*args, "--out", tmp_path / "ref")
    out = tmp_path / "run" / "ckpt"
    assert kill_when([*args, "--out", out], appears(tmp_path / "run" / "ckpt.work", "train_state*.pt")) == "ready"
    cli(*args, "--out", out)  # the default work directory OUT.work holds the state: it resumes, then goes
    hashes = [json.loads((d / "synthesizer.json").read_text())["weights"] for d in (tmp_path / "ref", out)]
    assert hashes[0] == hashes[1]
    assert not (tmp_path / "run" / "ckpt.work").exists() and temporaries(tmp_path) == []


@pytest.fixture(scope="module")
def store(kaggle, tmp_path_factory):
    path = tmp_path_factory.mktemp("store") / "s.h5"
    cli("balance", "--synth", "duplicate", "--data", "kaggle", "--data-dir", kaggle, "--test-per-class", "10",
        "--strategy", "covid=40,viral=40,normal=40", "--out", path)
    return path


def test_train_killed_after_an_epoch_and_resumed_ends_with_the_uninterrupted_metrics(store, tmp_path):
    args = ["train", "--data", store, "--classifier", "densenet121", "--classifier-option", "width=0.25",
            "--epochs", "2", "--batch-size", "16", "--device", "cpu"]
    cli(*args, "--out", tmp_path / "ref")
    run = tmp_path / "run"
    assert kill_when([*args, "--out", run], appears(run / "checkpoints", "last.pt")) == "ready"
    again = cli(*args, "--out", run, ok=False)  # the same command refuses to overwrite the run, naming --resume
    assert "pass --resume" in again.stderr
    cli(*args, "--resume", "--out", run)
    assert sha256(run / "metrics.json") == sha256(tmp_path / "ref" / "metrics.json")
    history = json.loads((run / "manifest.json").read_text())["history"]
    reference = json.loads((tmp_path / "ref" / "manifest.json").read_text())["history"]
    assert [h["train_loss"] for h in history] == [h["train_loss"] for h in reference]
    assert temporaries(tmp_path) == []


def test_balance_killed_while_loading_the_built_in_data_generates_it_again_the_same(tmp_path):
    """The "while loading" point: a balance of the built-in data set on its first use, killed while it
    generates the data set into the cache (its volumes' temporary exists), before any output byte.
    The rerun generates the same cache entry and writes the uninterrupted store."""
    args = ["balance", "--synth", "duplicate", "--data", "ctsim", "--source-option", "preset=tiny",
            "--test-per-class", "1", "--seed", "1"]
    cli(*args, "--out", tmp_path / "ref.h5", SYNTHAUG_CACHE=str(tmp_path / "ref"))
    cache, out = tmp_path / "cache", tmp_path / "run" / "s.h5"
    generating = lambda: any(cache.rglob(".volumes.h5.tmp*"))  # noqa: E731
    assert kill_when([*args, "--out", out], generating, SYNTHAUG_CACHE=str(cache)) == "ready"
    # the work was under way: the killed run held its output (its lock file is left) and wrote none of it
    assert (out.parent / ".s.h5.lock").is_file() and not out.exists() and not list(out.parent.glob(".s.h5.tmp*"))
    cli(*args, "--out", out, SYNTHAUG_CACHE=str(cache))
    assert sha256(out) == sha256(tmp_path / "ref.h5")
    (entry,) = [d for d in (cache / "ctsim").iterdir() if d.is_dir()]
    (reference,) = [d for d in (tmp_path / "ref" / "ctsim").iterdir() if d.is_dir()]
    assert entry.name == reference.name
    for name in ("images.h5", "volumes.h5"):
        assert sha256(entry / name) == sha256(reference / name)
    assert temporaries(tmp_path) == []


# ---- one writer ------------------------------------------------------------------------------------

HOLDER = ("import sys, time; from synthaug.kit.files import hold\n"
          "with hold(sys.argv[1]):\n    print('held', flush=True); time.sleep(120)")


def test_a_second_writer_of_the_same_output_is_refused_naming_the_first(kaggle, tmp_path):
    out = tmp_path / "out" / "s.h5"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        args = ["balance", "--synth", "duplicate", "--data", "kaggle", "--data-dir", kaggle, "--test-per-class", "5"]
        done = cli(*args, "--out", out, ok=False)
        assert done.returncode == 2
        assert done.stderr.strip().splitlines() == [
            f"Error: {out} is being written by another synthaug run (process {holder.pid}); wait for it to "
            f"finish or choose another output"]
        assert not out.exists()
    finally:
        holder.kill()
        holder.wait()
    cli(*args, "--out", out)  # the lock of a dead process is gone with it
    assert out.is_file() and temporaries(tmp_path) == []


def test_holding_is_reentrant_in_one_process_and_sweeps_a_killed_runs_temporaries(tmp_path):
    from synthaug.kit.files import atomic_path, hold, lock_path

    out = tmp_path / "o.bin"
    stale = tmp_path / ".o.bin.tmp999999"
    stale.write_bytes(b"half")
    with hold(out):
        assert not stale.exists() and lock_path(out).is_file()
        with atomic_path(out) as tmp:  # the same process may write what it holds
            tmp.write_bytes(b"whole")
    assert out.read_bytes() == b"whole" and not lock_path(out).exists()


# ---- disk full ---------------------------------------------------------------------------------------

LIMITED = ("import resource, sys, synthaug.cli\n"
           "resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), resource.RLIM_INFINITY))\n"
           "sys.argv = ['synthaug', *sys.argv[2:]]\nsynthaug.cli.main()")


def test_a_store_that_does_not_fit_on_the_disk_is_a_clear_error_and_the_previous_one_stays(kaggle, tmp_path):
    out = tmp_path / "s.h5"
    args = ["balance", "--synth", "duplicate", "--data", "kaggle", "--data-dir", str(kaggle), "--test-per-class", "5"]
    cli(*args, "--strategy", "none", "--out", out)
    before = sha256(out)
    done = subprocess.run([sys.executable, "-c", LIMITED, str(200_000), *args, "--out", str(out)], env=env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {out}: could not write") and "disk" in lines[0]
    assert sha256(out) == before and temporaries(tmp_path) == []
    np.testing.assert_equal(sorted(p.name for p in tmp_path.iterdir()), ["s.h5"])


def test_quality_killed_while_writing_and_run_again_writes_the_uninterrupted_report(store, tmp_path):
    args = ["quality", store, "--feature-epochs", "1", "--feature-size", "32", "--no-figures"]
    cli(*args, "--out", tmp_path / "ref")
    out = tmp_path / "run" / "q"
    assert kill_when([*args, "--out", out], appears(out.parent, ".q.tmp*")) == "ready"
    assert not out.exists()
    cli(*args, "--out", out)
    for name in ("quality.json", "nearest.csv", "quality.md"):
        assert (out / name).read_text().replace(str(out), "OUT") == \
            (tmp_path / "ref" / name).read_text().replace(str(tmp_path / "ref"), "OUT"), name
    assert temporaries(tmp_path) == []


def test_a_training_run_that_fills_the_disk_stops_with_one_line_and_nothing_half_written(store, tmp_path):
    out = tmp_path / "run"
    args = ["train", "--data", str(store), "--classifier", "densenet121", "--classifier-option", "width=0.25",
            "--epochs", "1", "--batch-size", "16", "--out", str(out)]
    done = subprocess.run([sys.executable, "-c", LIMITED, str(500_000), *args], env=env(), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = [line for line in done.stderr.strip().splitlines() if line.startswith("Error")]
    assert lines == [f"Error: {out / 'checkpoints' / 'best.pt'}: could not write: the disk is full or a file-size "
                     f"limit was reached (nothing was replaced; free some space and run again)"]
    assert temporaries(tmp_path) == [] and not (out / "checkpoints").exists()
    assert json.loads((out / "manifest.json").read_text())["status"] == "running"
    cli(*args[:-2], "--resume", "--out", out)  # with room again: a run with no checkpoint yet starts from epoch 1
    assert [h["epoch"] for h in json.loads((out / "manifest.json").read_text())["history"]] == [1]
    assert (out / "metrics.json").is_file() and temporaries(tmp_path) == []


def two_cell_spec() -> str:
    """tests/test_experiment.py's small spec at one seed, the unbalanced and duplicate arms: two cells."""
    from tests.test_experiment import SMALL_SPEC

    text = SMALL_SPEC.format(augment_extra="", epochs=1).replace("seeds = 2", "seeds = 1")
    return text[:text.index("[arms.augment]")] + text[text.index("[classifiers.small]"):]


def test_an_experiment_that_fills_the_disk_stops_with_one_line_and_goes_on_when_there_is_room(tmp_path):
    spec, out = tmp_path / "full.toml", tmp_path / "exp"
    spec.write_text(two_cell_spec())
    args = ["experiment", "run", str(spec), "--out", str(out)]
    # 2 MB a file: the data and the stores fit, a quarter-width ResNet-50 checkpoint (about 6 MB) does not
    done = subprocess.run([sys.executable, "-c", LIMITED, str(2_000_000), *args], env=env(), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    errors = [line for line in done.stderr.strip().splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and errors[0].endswith("/checkpoints/best.pt: could not write: the disk is full or a "
                                                   "file-size limit was reached (nothing was replaced; free some "
                                                   "space and run again)"), done.stderr[-2000:]
    assert temporaries(tmp_path) == [] and not (out / "results.csv").exists()
    stores = {p: sha256(p) for p in out.rglob("*.h5")}
    assert stores  # what was complete before the disk filled is kept, and reused by the rerun
    cli(*args)  # room again: the same command finishes the experiment
    import csv

    with open(out / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted((r["arm"], r["status"]) for r in rows) == [("duplicate", "done"), ("unbalanced", "done")]
    assert {p: sha256(p) for p in stores} == stores and temporaries(tmp_path) == []
