"""A grid of ctsim radiographs per class (the figure in docs/ctsim.md).

    python examples/ctsim_sample_grid.py --preset demo --per-class 6 --out docs/images/ctsim_grid.png

Rows: covid, the same covid patients without lesions (their twins), normal, viral. Images are the
first ``--per-class`` of each class in data-set order (no picking), with the covid severity
(fraction of lung involved, MosMedData grade) in the titles.
"""

from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--size", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-class", type=int, default=6)
    parser.add_argument("--out", default="docs/images/ctsim_grid.png")
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import synthaug

    data = synthaug.load_images("ctsim", preset=args.preset, size=args.size, seed=args.seed)
    covid = np.flatnonzero(data.labels == data.class_index("covid"))[:args.per_class]
    severity, grade = data.extras["severity"], data.extras["grade"]
    rows = [("covid", data.images[covid], [f"{severity[i]:.0%} CT-{grade[i]}" for i in covid]),
            ("covid twin\n(no lesions)", data.extras["twin"][covid], [""] * len(covid))]
    for name in ("normal", "viral"):
        idx = np.flatnonzero(data.labels == data.class_index(name))[:args.per_class]
        rows.append((name, data.images[idx], [f"{severity[i]:.0%}" if name == "viral" else "" for i in idx]))
    cell = 1.6 if data.image_shape[1] <= 64 else 3.0  # inches per image: large images shown larger
    fig, axes = plt.subplots(len(rows), args.per_class, figsize=(cell * args.per_class + 1, (cell + 0.15) * len(rows)),
                             squeeze=False)
    for r, (name, images, titles) in enumerate(rows):
        for c in range(args.per_class):
            ax = axes[r, c]
            ax.axis("off")
            if c < len(images):
                ax.imshow(images[c, 0], cmap="gray", vmin=0, vmax=1)
                ax.set_title(titles[c], fontsize=7)
        axes[r, 0].text(-0.08, 0.5, name, transform=axes[r, 0].transAxes, ha="right", va="center", fontsize=9)
    fig.suptitle(f"ctsim preset {args.preset!r}: {data.image_shape[1]} px, seed {args.seed}", fontsize=9)
    fig.tight_layout(rect=(0.06, 0, 1, 1))
    fig.savefig(args.out, dpi=120)
    print(args.out)


if __name__ == "__main__":
    main()
