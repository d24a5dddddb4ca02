"""Peak memory of `synthaug balance --synth augment` and `synthaug train` on a small and a large data set.

    .venv/bin/python benchmarks/memory.py                      # 1,000 and 20,000 images at 224 x 224
    .venv/bin/python benchmarks/memory.py --sizes 200 2000     # quicker
    .venv/bin/python benchmarks/memory.py --sizes 20 40 --train-steps 1 --size 32   # a smoke run

``--size`` is the side the images are read at (`balance --size`; the PNGs stay 224 x 224).

For each size N a Kaggle-layout set (the later release's folders, `COVID-19_Radiography_Dataset/
{COVID,Normal,Viral Pneumonia}/images/*.png`, 8-bit grey PNGs of 224 x 224, 10% / 45% / 45%) is
made by a generator in a temporary directory (nothing is kept in the repo), then

- `synthaug balance --synth augment --data kaggle --size 224 --test-fraction 0.1` writes a store (real images streamed
  in, the COVID deficit made and written a chunk at a time), and
- `synthaug.train` (what `synthaug train` runs) trains a quarter-width `resnet50` on that store for `--train-steps`
  batches of 32 (validation runs on the whole held-out share, so reading grows with N, memory must not).

Each command runs in its own process; its peak resident memory is the kernel's ru_maxrss of that
process. The script prints one JSON line: the peaks, the seconds, the store bytes per image, and
`balance_ratio` / `train_ratio`, the largest set's peak over the smallest's (the bound: 1.3).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = "COVID-19_Radiography_Dataset"
CLASSES = (("COVID", 0.10), ("Normal", 0.45), ("Viral Pneumonia", 0.45))
SIDE = 224
# `synthaug train` with the two settings the CLI does not take: a quarter-width network and a cap on
# the batches of the epoch (the same train() the CLI calls).
TRAIN = ("import sys, synthaug; from synthaug.pipeline.train import TrainConfig; "
         "synthaug.train(sys.argv[1], sys.argv[2], TrainConfig(classifier='resnet50', epochs=1, device='cpu', "
         "classifier_options={'width': 0.25}, steps_per_epoch=int(sys.argv[3])))")


def make_kaggle(root: Path, n: int, seed: int = 0) -> None:
    """``n`` grey PNGs in the later release's layout: smooth random fields plus noise, so each file is a
    realistically sized PNG (about 40 KB), not a constant image that compresses to nothing."""
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image

    counts = [int(round(n * share)) for _, share in CLASSES]
    counts[-1] = n - sum(counts[:-1])
    jobs = []
    for (folder, _), count in zip(CLASSES, counts):
        out = root / ROOT / folder / "images"
        out.mkdir(parents=True, exist_ok=True)
        prefix = folder.split()[0]
        jobs += [(out / f"{prefix}-{k + 1}.png", seed * 1_000_003 + len(jobs) + k) for k in range(count)]

    def write(job):
        path, image_seed = job
        rng = np.random.default_rng(image_seed)
        coarse = rng.random((8, 8))
        field = np.kron(coarse, np.ones((SIDE // 8, SIDE // 8)))
        image = np.clip(160 * field + rng.normal(0, 12, (SIDE, SIDE)) + 40, 0, 255).astype(np.uint8)
        Image.fromarray(image, "L").save(path)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write, jobs))


def measured(command: list[str]) -> tuple[int, float]:
    """(peak RSS in bytes, seconds) of ``command`` run in a fresh process (the probe below waits for it
    alone, so its RUSAGE_CHILDREN is that command's peak)."""
    probe = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)")
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", probe, *command], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return int(done.stdout.strip().splitlines()[-1]) * 1024, seconds  # ru_maxrss is in KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 20000])
    parser.add_argument("--train-steps", type=int, default=20, help="training batches per run (epoch capped)")
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temporary directory")
    parser.add_argument("--size", type=int, default=SIDE, help="side the images are read at (balance --size)")
    args = parser.parse_args()
    from synthaug.pipeline.store import store_info

    synthaug = str(Path(sys.executable).with_name("synthaug"))
    env_threads = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    os.environ.update(env_threads)
    result: dict = {"benchmark": "memory", "image_side": args.size, "train_steps": args.train_steps, "runs": {}}
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        for n in args.sizes:
            data, store, run = Path(tmp) / f"kaggle{n}", Path(tmp) / f"store{n}.h5", Path(tmp) / f"run{n}"
            started = time.perf_counter()
            make_kaggle(data, n)
            made_s = time.perf_counter() - started
            balance_peak, balance_s = measured([synthaug, "balance", "--synth", "augment", "--data", "kaggle",
                                                "--data-dir", str(data), "--size", str(args.size),
                                                "--test-fraction", "0.1", "--out", str(store)])
            train_peak, train_s = measured([sys.executable, "-c", TRAIN, str(store), str(run), str(args.train_steps)])
            info = store_info(store)
            images = sum(sum(s["classes"].values()) for s in info["splits"].values())
            result["runs"][str(n)] = {
                "images_in": n, "images_in_store": images, "generate_s": round(made_s, 1),
                "balance_peak_mb": round(balance_peak / 2**20), "balance_s": round(balance_s, 1),
                "train_peak_mb": round(train_peak / 2**20), "train_s": round(train_s, 1),
                "store_bytes_per_image": round(store.stat().st_size / images), "store_dtype": info["image_dtype"],
            }
            for path in (data,):
                subprocess.run(["rm", "-rf", str(path)], check=True)
    runs = [result["runs"][str(n)] for n in args.sizes]
    result["balance_ratio"] = round(runs[-1]["balance_peak_mb"] / runs[0]["balance_peak_mb"], 3)
    result["train_ratio"] = round(runs[-1]["train_peak_mb"] / runs[0]["train_peak_mb"], 3)
    result["bound"] = 1.3
    print(json.dumps(result))


if __name__ == "__main__":
    main()
