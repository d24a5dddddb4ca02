"""The main job timed stage by stage: `synthaug demo` from an empty cache, against a plain-PyTorch cell.

    .venv/bin/python benchmarks/demo.py                   # the demo preset (2 CPU cores: several minutes)
    .venv/bin/python benchmarks/demo.py --preset tiny     # seconds (the smoke run in tests/test_benchmarks.py)

``synthaug.experiments.demo.run_demo`` runs into a temporary directory with an empty
``SYNTHAUG_CACHE``, so that the data stage is ctsim's whole generation, as on a fresh machine. The
stages and their seconds are the ones the runner recorded in experiment.json (the same the demo
prints and its report's Time section shows): the data, the synthesizer's fit, each store's balance,
each cell (training + evaluation), quality, the report.

The reference, measured in the same process right after the demo, is the bare compute of one of its
cells: a plain-PyTorch loop that builds the same network (the registered classifier with the cell's
options), trains it on as many training images as the cell had, held in memory as one tensor, for the
same epochs and batch size (so the same optimizer steps, Adam at the recipe's rate), runs a forward
pass over as many validation images after each epoch and one over the test images at the end. No
store, no augmentation, no checkpoints, no metrics or figures. ``cell_overhead_ratio`` = the cell's
seconds (cell.json) / the reference's: what synthaug's loop adds to the network's own arithmetic
(lazy store reading, flip + rotation, validation metrics, checkpoints, evaluation, plots). The network
and the machine weigh on both sides alike, so a rise of the ratio is a regression of the loop. The
cell is the unbalanced arm's (the same whatever the synthesizer).

Prints one JSON line: ``stages`` (name -> seconds, in the order they finished), ``seconds_by_kind``
(data, fit, balance, cell, quality, report), ``total_seconds`` (the runner's wall time), ``peak_rss_mb``
(the whole process: the demo and the reference), the reference's figures, ``cell_overhead_ratio``,
and the machine: torch version, threads, CPU count, load average.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REFERENCE_ARM = "unbalanced"


def plain_cell(run: Path, store: Path) -> dict:
    """Time the reference for the training run ``run`` (a cell's run/) on ``store``: the same network,
    image counts, epochs, batch size and learning rate, in a plain loop (the docstring above)."""
    import torch
    import torch.nn.functional as F

    from synthaug.pipeline.runs import read_manifest
    from synthaug.pipeline.store import read_store
    from synthaug.registry import get_registry

    manifest = read_manifest(run)
    config, data = manifest["config"], manifest["data"]
    if config["mode"] != "scratch":
        sys.exit(f"the reference trains from scratch; the cell's recipe is {config['mode']!r}")
    train = read_store(store, "train")
    test = read_store(store, "test")
    n_train, n_val, batch = data["train"], data["val"], config["batch_size"]
    images = torch.from_numpy(np.asarray(train.images[:n_train + n_val], np.float32))
    labels = torch.from_numpy(np.asarray(train.labels[:n_train + n_val], np.int64))
    test_images = torch.from_numpy(np.asarray(test.images, np.float32))
    classes = len(data["class_names"])

    torch.manual_seed(config["seed"])
    started = time.perf_counter()
    classifier = get_registry().entry("classifier", config["classifier"]).resolve()(**config["classifier_options"])
    model = classifier.build(images.shape[1], classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=config["lr"])
    steps = 0
    for epoch in range(config["epochs"]):
        model.train()
        order = torch.randperm(n_train, generator=torch.Generator().manual_seed(epoch))
        for first in range(0, n_train, batch):
            chosen = order[first:first + batch]
            loss = F.cross_entropy(model(images[chosen]), labels[chosen])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps += 1
        model.eval()
        with torch.no_grad():
            for first in range(n_train, n_train + n_val, batch):
                model(images[first:first + batch])
    with torch.no_grad():
        for first in range(0, len(test_images), batch):
            model(test_images[first:first + batch])
    seconds = time.perf_counter() - started
    return {"what": "plain-PyTorch loop: same network, image counts, epochs, batch size; tensors in memory, "
                    "no augmentation, checkpoints or figures",
            "seconds": round(seconds, 3), "steps": steps, "train_images": n_train, "val_images": n_val,
            "test_images": len(test_images), "epochs": config["epochs"], "batch_size": batch,
            "network": config["classifier"], "classifier_options": config["classifier_options"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=("tiny", "demo"), default="demo",
                        help="the demo's preset (paper: a GPU and hours, not a benchmark)")
    parser.add_argument("--synth", default=None, help="the demo's synthesizer (default: the demo's choice)")
    args = parser.parse_args(argv)

    import torch

    from synthaug.kit import progress
    from synthaug.kit.memory import peak_bytes

    progress.set_quiet(True)  # stdout carries the one JSON line; the stage lines are in it
    with tempfile.TemporaryDirectory(prefix="synthaug-demo-bench-") as tmp:
        os.environ["SYNTHAUG_CACHE"] = str(Path(tmp) / "cache")  # empty: ctsim generated from scratch
        from synthaug.experiments.demo import run_demo

        out = run_demo(args.preset, Path(tmp) / "demo", synthesizer=args.synth)
        saved = json.loads((out / "experiment.json").read_text())
        cell_dir = next(p for p in sorted((out / "cells").iterdir()) if p.name.startswith(f"{REFERENCE_ARM}--"))
        cell = json.loads((cell_dir / "cell.json").read_text())
        reference = plain_cell(cell_dir / "run", out / cell["store"])
        synthesizer = next(a["synthesizer"] for a in saved["spec"]["arms"] if a["key"] == "synthesis")
    stages = {s["name"]: s["seconds"] for s in saved["stages"]}
    by_kind: dict[str, float] = {}
    for name, seconds in stages.items():
        kind = name.split()[0]
        by_kind[kind] = round(by_kind.get(kind, 0.0) + seconds, 3)
    print(json.dumps({
        "benchmark": "demo", "preset": args.preset, "synthesizer": synthesizer, "stages": stages,
        "seconds_by_kind": by_kind, "total_seconds": saved["seconds"],
        "peak_rss_mb": round(peak_bytes("cpu") / 2**20, 1),
        "reference": reference, "cell": cell["cell"], "cell_seconds": round(cell["seconds"], 3),
        "cell_overhead_ratio": round(cell["seconds"] / reference["seconds"], 3),
        "torch": torch.__version__, "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
        "load_avg_1min": round(os.getloadavg()[0], 2), "python": platform.python_version(),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
