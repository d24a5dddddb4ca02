"""DRR vs G(CT) for the same ctsim volumes after a short CPU fit of xpgan; one JSON line of figures.

    python benchmarks/xpgan_figure.py --preset tiny --steps 64 --batch-size 4 --out docs/images/xpgan_drr_vs_g.png

Fits ``xpgan`` (``preset=small`` networks, classifier ``--classifier``) on ctsim's radiographs and
volumes, then renders, for ``--per-class`` volumes of each class, the siddon DRR (the R(G) target,
identity pose) above G's output for the same volume. Prints one JSON line: wall time and R(G) =
mean |G(CT) - DRR| on those volumes before training (a fresh G with the same seed, the reference of
the same run) and after, and ``drr_l1_ratio`` = after / before (below 1: the fit brought G towards
the DRRs).

    python benchmarks/xpgan_figure.py --steps 1 --batch-size 2 --classifier small-cnn --per-class 1 --out /tmp/x.png
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def drr_and_g(synth, volumes, indices, size):
    from synthaug.registry import create
    from synthaug_plugins.xpgan_projector import ctprep

    net = synth.generator.config
    renderer = ctprep.PairRenderer(volumes, create("projector", synth.config.projector), image_size=size,
                                   encoder_shape=net.volume_shape, hu_window=synth.config.hu_window,
                                   view=synth.config.view, sdd=synth.config.sdd, sid=synth.config.sid, cache_mb=0)
    pairs = [renderer.pair(int(i), (0.0,) * 6) for i in indices]
    g = synth.render(np.stack([p[0] for p in pairs]), seed=0)
    return np.stack([p[1] for p in pairs]), g


def register_small_cnn() -> str:
    """The tests' small CNN classifier (tests/xpgan_helpers.py), for runs without a classifier plugin."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from xpgan_helpers import register_small_classifier

    return register_small_classifier()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny", help="ctsim preset (tiny: 32 px, demo: 64 px)")
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--classifier", default="densenet121", help="a registered classifier, or small-cnn")
    parser.add_argument("--per-class", type=int, default=2)
    parser.add_argument("--out", default="docs/images/xpgan_drr_vs_g.png")
    args = parser.parse_args()

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    import synthaug
    from synthaug.registry import create

    torch.set_num_threads(2)
    if args.classifier == "small-cnn":
        args.classifier = register_small_cnn()
    images = synthaug.load_images("ctsim", preset=args.preset)
    volumes = synthaug.load_volumes("ctsim", preset=args.preset)
    size = images.image_shape[1]
    rng = np.random.default_rng(0)
    chosen = np.concatenate([rng.choice(np.flatnonzero(volumes.labels == c), args.per_class, replace=False)
                             for c in range(len(volumes.class_names))])
    options = dict(preset="small", batch_size=args.batch_size, max_steps=args.steps, classifier=args.classifier)

    fresh = create("synthesizer", "xpgan", **dict(options, max_steps=1, lr=0.0))  # same seed, untrained G
    fresh.fit(images, volumes)
    drr, g_before = drr_and_g(fresh, volumes, chosen, size)

    synth = create("synthesizer", "xpgan", **options)
    start = time.perf_counter()
    synth.fit(images, volumes)
    seconds = time.perf_counter() - start
    _, g_after = drr_and_g(synth, volumes, chosen, size)

    cols = len(chosen)
    fig, axes = plt.subplots(2, cols, figsize=(1.6 * cols, 3.6))
    for k, i in enumerate(chosen):
        for row, (image, title) in enumerate(((drr[k, 0], "DRR"), (g_after[k, 0], "G(CT)"))):
            axes[row, k].imshow(image, cmap="gray", vmin=0, vmax=1)
            axes[row, k].set_xticks([])
            axes[row, k].set_yticks([])
            if k == 0:
                axes[row, k].set_ylabel(title)
        axes[0, k].set_title(f"{volumes.class_names[volumes.labels[i]]}\n{volumes.patient_ids[i]}", fontsize=7)
    fig.suptitle(f"ctsim {args.preset}: siddon DRR (top) vs xpgan G (bottom), {args.steps} steps on CPU", fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    last = synth.losses[-10:]  # every step's losses (history: the per-epoch means)
    before, after = float(np.abs(g_before - drr).mean()), float(np.abs(g_after - drr).mean())
    print(json.dumps({
        "benchmark": "xpgan_figure", "preset": args.preset, "image_size": size, "steps": args.steps,
        "batch_size": args.batch_size, "classifier": args.classifier, "fit_seconds": round(seconds, 1),
        "drr_l1_before": round(before, 4), "drr_l1_after": round(after, 4), "drr_l1_ratio": round(after / before, 4),
        "last10_mean": {k: round(float(np.mean([h[k] for h in last])), 4)
                        for k in ("loss_drr", "loss_g_adv", "loss_d", "loss_c_real", "loss_c_fake")},
        "out": args.out}))


if __name__ == "__main__":
    main()
