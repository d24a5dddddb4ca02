"""Time and peak memory of ``synthaug.quality`` on a large store, against reading the store once.

    .venv/bin/python benchmarks/quality.py                          # 10,000 images of 224 x 224 x 1
    .venv/bin/python benchmarks/quality.py --images 500 --size 64   # a quick run

A store of ``--images`` grey images (smooth random shapes, a class-dependent brightness, speckle)
is written chunk by chunk with h5py in the store layout (``synthaug/pipeline/store.py``: the same
datasets, chunks, compression and attributes as ``write_store``, which would need every image in
memory at once): a fifth of the images form the test split (half covid, half normal), the training
split is half normal and half covid, and ``--synthetic-fraction`` of its covid images are
"synthetic" (the same generator, blurred). Then, each in a fresh process so that each peak is its own
(the parent stays small: a child's ``ru_maxrss`` starts from its parent's resident size at fork):

- **imports**: ``import torch, synthaug.assess.run``: the memory of the libraries alone;
- **reference** (the floor): every image of both splits read once through ``open_store``;
- **quality**: ``quality(store)`` with no ``out``: the default feature network (trained on at most
  ``--feature-images`` real training images for ``--epochs``), FID / FID∞ / KID / PRDC / the
  two-sample test / memorisation / paired truth for the synthetic covid images.

Prints one JSON line: ``seconds`` and ``cpu_seconds`` of quality, ``images_per_s`` (store images
per second), ``peak_rss_mb`` (``ru_maxrss``), ``image_mb`` (the store's images uncompressed,
float32) and ``rss_to_image_bytes`` = peak RSS / image bytes (well below 1: the images are not
held in memory), with the reference's figures beside them and ``ratio_seconds`` /
``ratio_rss`` = quality / reference. ``--threads`` sets torch's threads (1 by default: on two cores
shared with other jobs, two threads waiting on each other cost more than they gain).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CLASSES = ("covid", "normal")
SYNTH = "bench-synth"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


# ---- the store ----------------------------------------------------------------------------------
def layout(n: int, synthetic_fraction: float, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """Per split: labels, synth, patient ids (one image per patient), rows in order."""
    rng = np.random.default_rng(seed)
    n_test = max(4, n // 5)
    n_train = n - n_test
    test_labels = np.arange(n_test) % 2  # covid 0, normal 1
    covid = n_train // 2
    synthetic = round(covid * synthetic_fraction)
    train_labels = np.concatenate([np.zeros(covid, np.int64), np.ones(n_train - covid, np.int64)])
    train_synth = np.array(["real"] * n_train, dtype=object)
    train_synth[rng.choice(covid, synthetic, replace=False)] = SYNTH
    return {"train": {"labels": train_labels, "synth": train_synth},
            "test": {"labels": test_labels.astype(np.int64), "synth": np.array(["real"] * n_test, dtype=object)}}


def images(labels: np.ndarray, synth: np.ndarray, size: int, rng: np.random.Generator):
    """Float32 ``(B, 1, size, size)`` in [0, 1]: a smooth random field (bilinear from 8 x 8), brighter
    for covid, with speckle; synthetic images are blurred."""
    import torch
    import torch.nn.functional as F

    b = len(labels)
    coarse = torch.from_numpy(rng.random((b, 1, 8, 8), dtype=np.float32))
    field = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1).numpy()
    x = 0.25 + 0.5 * field + 0.1 * (labels == 0)[:, None, None, None]
    x = x + rng.normal(0, 0.03, x.shape).astype(np.float32)
    fake = synth != "real"
    if fake.any():
        t = torch.from_numpy(np.ascontiguousarray(x[fake]))
        x[fake] = F.avg_pool2d(F.pad(t, (1, 1, 1, 1), mode="replicate"), 3, stride=1).numpy()
    return np.clip(x, 0, 1).astype(np.float32)


def write_store_in_chunks(path: Path, n: int, size: int, synthetic_fraction: float, chunk: int = 256) -> dict:
    """The store at ``path``, written ``chunk`` images at a time (the layout of ``write_store``)."""
    import h5py

    from synthaug.pipeline.store import SCHEMA_VERSION
    from synthaug.version import __version__

    rng = np.random.default_rng(1)
    text = h5py.string_dtype()
    counts = {}
    with h5py.File(path, "w", track_order=True) as f:
        f.attrs["schema_version"] = SCHEMA_VERSION
        f.attrs["class_names"] = json.dumps(list(CLASSES))
        f.attrs["config"] = json.dumps({"command": "benchmarks/quality.py", "images": n, "size": size}, sort_keys=True)
        f.attrs["synthaug_version"] = __version__
        for split, cols in layout(n, synthetic_fraction).items():
            labels, synth = cols["labels"], cols["synth"]
            m = len(labels)
            g = f.create_group(split)
            ds = g.create_dataset("images", shape=(m, 1, size, size), dtype=np.float32, chunks=(1, 1, size, size),
                                  compression="gzip", compression_opts=4, shuffle=True)
            for k in range(0, m, chunk):
                ds[k:k + chunk] = images(labels[k:k + chunk], synth[k:k + chunk], size, rng)
            pids = np.array([f"{split}-{i:06d}" for i in range(m)], dtype=object)
            g.create_dataset("labels", data=labels)
            g.create_dataset("patient_ids", data=pids, dtype=text)
            g.create_dataset("synth", data=synth, dtype=text)
            g.create_dataset("origin", data=np.array([f"bench:{p}" for p in pids], dtype=object), dtype=text)
            g.create_dataset("source_index", data=np.full(m, -1, np.int64))
            g.create_dataset("seed", data=np.where(synth == "real", -1, 0).astype(np.int64))
            counts[split] = {"real": {c: int(((labels == i) & (synth == "real")).sum()) for i, c in enumerate(CLASSES)},
                             "synthetic": int((synth != "real").sum())}
    return counts


# ---- the phases, each in its own process ----------------------------------------------------------
def phase(name: str, store: str, args) -> dict:
    if name == "write":
        wall = time.perf_counter()
        counts = write_store_in_chunks(Path(store), args.images, args.size, args.synthetic_fraction)
        return {"counts": counts, "seconds": time.perf_counter() - wall, "peak_rss_mb": peak_rss_mb()}
    import torch

    torch.set_num_threads(args.threads)
    from synthaug.assess.run import quality
    from synthaug.pipeline.store import open_store

    wall, cpu = time.perf_counter(), time.process_time()
    out: dict = {}
    if name == "reference":
        read = 0
        for split in ("train", "test"):
            data = open_store(store, split)
            for i in range(len(data)):
                data[i]
                read += 1
            data.close()
        out["images_read"] = read
    elif name == "quality":
        from synthaug.assess.features import FeatureConfig

        config = FeatureConfig(epochs=args.epochs, max_images=args.feature_images, seed=0)
        result = quality(store, feature_config=config)
        g = result.groups[0]
        fid = g.fidelity
        out["figures"] = {"fid": round(fid["fid"]["value"], 4), "fid_inf": round(fid["fid_inf"]["value"], 4),
                          "auc": round(fid["two_sample"]["auc"], 4), "precision": fid["precision"],
                          "copies_pixels": g.memorisation["pixels"]["copies"], "synthetic": int(g.rows.size)}
    out.update(seconds=time.perf_counter() - wall, cpu_seconds=time.process_time() - cpu, peak_rss_mb=peak_rss_mb())
    return out


def run_phase(name: str, store: Path, args) -> dict:
    cmd = [sys.executable, __file__, "--phase", name, "--store", str(store), "--threads", str(args.threads),
           "--epochs", str(args.epochs), "--feature-images", str(args.feature_images), "--images", str(args.images),
           "--size", str(args.size), "--synthetic-fraction", str(args.synthetic_fraction)]
    env = {**os.environ, "SYNTHAUG_QUIET": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"phase {name} failed ({done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000, help="images in the store, both splits")
    parser.add_argument("--size", type=int, default=224, help="image side in pixels")
    parser.add_argument("--synthetic-fraction", type=float, default=0.5, help="of the training covid images")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in every phase")
    parser.add_argument("--epochs", type=int, default=1, help="feature network training epochs")
    parser.add_argument("--feature-images", type=int, default=1000, help="at most this many real images train it")
    parser.add_argument("--dir", default=None, help="where the store is written (default: a temporary directory)")
    parser.add_argument("--phase", choices=("write", "imports", "reference", "quality"), help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.phase == "imports":
        import torch  # noqa: F401

        import synthaug.assess.run  # noqa: F401

        print(json.dumps({"peak_rss_mb": peak_rss_mb()}))
        return 0
    if args.phase:
        print(json.dumps(phase(args.phase, args.store, args)))
        return 0

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        store = Path(tmp) / "quality-bench.h5"
        written = run_phase("write", store, args)
        imports = run_phase("imports", store, args)
        reference = run_phase("reference", store, args)
        measured = run_phase("quality", store, args)
        file_mb = store.stat().st_size / 2**20
    image_mb = args.images * args.size * args.size * 4 / 2**20
    print(json.dumps({
        "benchmark": "quality", "images": args.images, "size": args.size, "threads": args.threads,
        "counts": written["counts"],
        "seconds": round(measured["seconds"], 2), "cpu_seconds": round(measured["cpu_seconds"], 2),
        "images_per_s": round(args.images / measured["seconds"], 2),
        "peak_rss_mb": round(measured["peak_rss_mb"], 1), "image_mb": round(image_mb, 1),
        "rss_to_image_bytes": round(measured["peak_rss_mb"] / image_mb, 3),
        "imports_rss_mb": round(imports["peak_rss_mb"], 1),
        "above_imports_to_image_bytes": round((measured["peak_rss_mb"] - imports["peak_rss_mb"]) / image_mb, 3),
        "reference": {"what": "every image read once through open_store", "seconds": round(reference["seconds"], 2),
                      "images_per_s": round(reference["images_read"] / reference["seconds"], 2),
                      "peak_rss_mb": round(reference["peak_rss_mb"], 1)},
        "ratio_seconds": round(measured["seconds"] / reference["seconds"], 2),
        "ratio_rss": round(measured["peak_rss_mb"] / reference["peak_rss_mb"], 3),
        "figures": measured["figures"], "feature_network": {"epochs": args.epochs, "max_images": args.feature_images},
        "store_file_mb": round(file_mb, 1), "write_seconds": round(written["seconds"], 2),
        "write_peak_rss_mb": round(written["peak_rss_mb"], 1), "parent_rss_mb": round(peak_rss_mb(), 1),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
