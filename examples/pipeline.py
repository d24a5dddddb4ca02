"""Compose synthaug in Python: load a source, split, balance with any synthesizer, train-ready Dataset.

    python examples/pipeline.py --data kaggle --data-dir "path/to/COVID-19 Radiography Database" --out b.h5

Every step is the same Python call the CLI makes.
"""

from __future__ import annotations

import argparse

import numpy as np

import synthaug


def run(data: str, data_dir: str | None, out: str, synth: str = "augment", size: int = 64,
        test_per_class: int = 60, seed: int = 0, **source_options) -> dict:
    # 1. Load any registered source into an ImageSet (float32 N x C x H x W in [0, 1]).
    images = synthaug.load_images(data, data_dir, size=size, **source_options)
    # 2. The real-only, patient-aware test split: fixed before any synthesizer sees data.
    train, test, report = synthaug.split_test(images, per_class=test_per_class, seed=seed)
    # 3. How many images each class lacks under the default strategy ("auto" = not majority).
    deficits = synthaug.plan_counts(train.counts(), "auto")
    # 4. Balance with any registered synthesizer and write the HDF5 store (same split, same seed).
    result = synthaug.balance(images, synth, test_per_class=test_per_class, seed=seed, out=out)
    assert result.deficits == deficits
    # 5. Open the store lazily as a torch Dataset, ready for a DataLoader.
    dataset = synthaug.open_store(out, split="train")
    image, label = dataset[0]
    return {
        "train": train.counts(), "test": test.counts(), "deficits": deficits,
        "balanced": {c: int(np.sum(dataset.labels == i)) for i, c in enumerate(dataset.class_names)},
        "first_item": [list(image.shape), label],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="ctsim")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--synth", default="augment")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--test-per-class", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    print(run(args.data, args.data_dir, args.out, args.synth, args.size, args.test_per_class, args.seed))


if __name__ == "__main__":
    main()
