"""Bytes per image and images read per second: the uint8 store against a float32 one and the source PNGs.

    .venv/bin/python benchmarks/store.py                 # 2,000 grey PNGs of 224 x 224
    .venv/bin/python benchmarks/store.py --images 500

A Kaggle-layout set of 8-bit PNGs is generated (benchmarks/memory.py's generator), then in one run:

- `png`: each file decoded with PIL into a float32 image (what the `kaggle` source does per image);
- `uint8`: the store `synthaug balance --strategy none` writes for it (8-bit source: uint8 + scale);
- `float32`: the same images written as float32 (what every store held before schema version 2).

Reading is what training does: ``open_store(path)[i]`` for every index in a shuffled order, on one
thread. Also checked: the uint8 store's images equal the float32 store's and the decoded PNGs', bit for
bit. Prints one JSON line with bytes per image, images/s for each, and the ratios against `png`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from memory import SIDE, make_kaggle  # benchmarks/ is the script's own folder


def read_rate(dataset, order: np.ndarray) -> tuple[float, np.ndarray]:
    started = time.perf_counter()
    first = None
    for i in order:
        image, _ = dataset[int(i)]
        first = image if first is None else first
    return len(order) / (time.perf_counter() - started), np.asarray(dataset[0][0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    args = parser.parse_args()

    import torch

    import synthaug
    from synthaug.pipeline.store import open_store, read_store, store_info, write_store
    from synthaug_plugins.sources.images import read_image

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_kaggle(tmp / "data", args.images)
        data = synthaug.load_images("kaggle", tmp / "data", size=SIDE, lazy=True)
        result = synthaug.balance(data, None, strategy="none", test_fraction=0.1, out=tmp / "uint8.h5")
        stored = read_store(result.path, "train", lazy=True)
        as_float = stored.with_provenance(meta={})  # no bit depth: kept as float32
        write_store(tmp / "float32.h5", {"train": as_float, "test": read_store(result.path, "test", lazy=True)
                                         .with_provenance(meta={})})
        files = np.asarray(stored.origin)
        order = np.random.default_rng(0).permutation(len(files))

        class Pngs:
            def __getitem__(self, i):
                return torch.from_numpy(read_image(Path(files[i]), SIDE, 1)), 0

        rates, first = {}, {}
        for name, dataset in (("png", Pngs()), ("uint8", open_store(tmp / "uint8.h5")),
                              ("float32", open_store(tmp / "float32.h5"))):
            rates[name], first[name] = read_rate(dataset, order)
        same = all(np.array_equal(read_store(tmp / f"{kind}.h5", "train").images, np.asarray(stored.images))
                   for kind in ("uint8", "float32"))
        same = same and np.array_equal(first["png"], first["uint8"])
        n = sum(sum(s["classes"].values()) for s in store_info(tmp / "uint8.h5")["splits"].values())
        origins = synthaug.read_store(tmp / "uint8.h5", "test", images=False).origin
        png_bytes = sum(Path(f).stat().st_size for f in origins)
        png_bytes += sum(Path(f).stat().st_size for f in files)
        print(json.dumps({
            "benchmark": "store", "images": n, "image": f"1x{SIDE}x{SIDE}",
            "bytes_per_image": {"png": round(png_bytes / n), "uint8": round((tmp / "uint8.h5").stat().st_size / n),
                                "float32": round((tmp / "float32.h5").stat().st_size / n)},
            "images_per_s": {k: round(v) for k, v in rates.items()},
            "uint8_vs_png_read": round(rates["uint8"] / rates["png"], 2),
            "float32_vs_png_read": round(rates["float32"] / rates["png"], 2),
            "uint8_vs_float32_read": round(rates["uint8"] / rates["float32"], 2),
            "uint8_vs_float32_bytes": round((tmp / "uint8.h5").stat().st_size / (tmp / "float32.h5").stat().st_size, 3),
            "values_identical": bool(same),
        }))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
