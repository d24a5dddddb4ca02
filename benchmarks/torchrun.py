"""`synthaug balance` and `synthaug fit` in one process against the same commands under torchrun.

    .venv/bin/python benchmarks/torchrun.py                  # 1,000 images, 2 processes
    .venv/bin/python benchmarks/torchrun.py --images 400     # quicker
    .venv/bin/python benchmarks/torchrun.py --images 40 --size 32 --epochs 1   # a smoke run

A Kaggle-layout set of 224 x 224 grey PNGs (10% COVID; `benchmarks/memory.py`'s generator) is made
in a temporary directory, then each of these runs once as one process and once as
`torchrun --standalone --nproc_per_node N` (torchrun gives each process one thread on the CPU; the
single process gets the machine's threads):

- `balance --synth augment` (the classical arm: chunks of 256 images shared out, rank 0 writes);
- `fit --synth pix2pix` (each process takes its share of every batch; gradients averaged);
- `balance --synth pix2pix --synth-checkpoint` with the one-process fit (generation shared out).

It prints one JSON line: the seconds of each, `speedup` (one process's seconds over N processes'),
whether the two stores are the same bytes (sha256), and for the fit the mean absolute difference of
the N-process generator's images from the one-process generator's (images in [0, 1], dropout off),
next to the same difference for a one-process fit with another seed: the reference for "close".
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from memory import make_kaggle  # noqa: E402

BIN = Path(sys.executable).parent


def pix2pix_options(epochs: int) -> list[str]:
    return ["--synth", "pix2pix", "--synth-option", "ngf=16", "--synth-option", "ndf=16",
            "--synth-option", "batch_size=8", "--synth-option", f"epochs={epochs}"]


def run(args: list[str], nproc: int) -> float:
    env = dict(os.environ, SYNTHAUG_QUIET="1", PYTHONWARNINGS="ignore")
    command = [str(BIN / "synthaug"), *args]
    if nproc > 1:
        command = [str(BIN / "torchrun"), "--standalone", f"--nproc_per_node={nproc}", *command]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - started


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def generator_images(checkpoint: Path, target: str, size: int) -> np.ndarray:
    import torch

    from plugins.pix2pix_translator.synthesizer import Pix2Pix
    from plugins.pix2pix_translator.training import from_model, to_model

    generator = Pix2Pix.load(checkpoint).generators[target].eval()
    x = np.random.default_rng(0).random((32, 1, size, size), dtype=np.float32)
    with torch.no_grad():
        return from_model(generator(to_model(x)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2, help="pix2pix fit epochs")
    args = parser.parse_args()
    pix2pix = pix2pix_options(args.epochs)
    work = Path(tempfile.mkdtemp(prefix="synthaug-torchrun-"))
    try:
        make_kaggle(work / "kaggle", args.images)
        data = ["--data", "kaggle", "--data-dir", str(work / "kaggle"), "--size", str(args.size),
                "--test-fraction", "0.1", "--strategy", "covid=400"]
        result: dict = {"benchmark": "torchrun", "images": args.images, "size": args.size, "epochs": args.epochs,
                        "processes": args.nproc, "cpus": os.cpu_count()}
        seconds = {}
        for n in (1, args.nproc):
            seconds[("augment", n)] = run(["balance", *data, "--synth", "augment",
                                           "--out", str(work / f"aug{n}.h5")], n)
            seconds[("fit", n)] = run(["fit", *data, *pix2pix, "--out", str(work / f"fit{n}")], n)
        run(["fit", *data, *pix2pix, "--seed", "1", "--out", str(work / "fit-seed1")], 1)
        for n in (1, args.nproc):
            seconds[("generate", n)] = run(["balance", *data, *pix2pix, "--synth-checkpoint", str(work / "fit1"),
                                            "--out", str(work / f"pix{n}.h5")], n)
        for name in ("augment", "fit", "generate"):
            one, many = seconds[(name, 1)], seconds[(name, args.nproc)]
            result[name] = {"seconds_1": round(one, 1), f"seconds_{args.nproc}": round(many, 1),
                            "speedup": round(one / many, 2)}
        result["augment"]["same_bytes"] = sha256(work / "aug1.h5") == sha256(work / f"aug{args.nproc}.h5")
        result["generate"]["same_bytes"] = sha256(work / "pix1.h5") == sha256(work / f"pix{args.nproc}.h5")
        reference = generator_images(work / "fit1", "covid", args.size)
        result["fit"]["generator_difference"] = round(float(np.abs(
            generator_images(work / f"fit{args.nproc}", "covid", args.size) - reference).mean()), 4)
        result["fit"]["other_seed_difference"] = round(float(np.abs(
            generator_images(work / "fit-seed1", "covid", args.size) - reference).mean()), 4)
        print(json.dumps(result))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
