"""The figures of ``synthaug quality`` (``<out>/figures/``), per synthesizer and class: real vs
synthetic samples, the nearest-pair sheet, nearest-neighbour distances, a 2-D projection of the
features and intensity histograms (matplotlib, through :mod:`synthaug.pipeline.report`)."""

from __future__ import annotations

import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

FIGURES_DIR = "figures"
#: Images a side of the sample grid and pairs on the nearest-pair sheet.
SHOWN = 8


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9_]+", "-", str(name).lower()).strip("-") or "unnamed"


def group_slugs(groups) -> list[str]:
    """``<synthesizer>-<class>`` file-name parts, made unique (two names may slug alike: ``a|b``, ``a*b``)."""
    taken: set[str] = set()
    out = []
    for group in groups:
        base = candidate = f"{slug(group.synthesizer)}-{slug(group.class_name)}"
        count = 1
        while candidate in taken:
            count += 1
            candidate = f"{base}-{count}"
        taken.add(candidate)
        out.append(candidate)
    return out


@contextmanager
def new_figure(path: Path, rows: int, columns: int, size: tuple[float, float]) -> Iterator[tuple[Any, np.ndarray]]:
    """A figure saved to ``path`` when the block succeeds and closed either way."""
    from synthaug.pipeline.report import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(rows, columns, figsize=size, squeeze=False)
    try:
        yield fig, axes
    except BaseException:
        plt.close(fig)
        raise
    save_figure(fig, path)


def evenly_spaced(count: int, shown: int = SHOWN) -> np.ndarray:
    """Up to ``shown`` indices spread over ``range(count)``: the same every run, no random draw."""
    return np.unique(np.linspace(0, count - 1, min(shown, count)).round().astype(int)) if count else np.zeros(0, int)


def show(ax, image, caption: str = "") -> None:
    """One (C, H, W) image: RGB for three channels, otherwise the channel mean in grey (``viewable``)."""
    from synthaug.pipeline.report import viewable

    ax.imshow(viewable(image), cmap="gray", vmin=0.0, vmax=1.0)  # the colour map applies to grey only
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(caption, fontsize=7)


def image_of(dataset, row: int, mirrored: bool = False) -> np.ndarray:
    image = dataset[int(row)][0].numpy()
    return image[..., ::-1] if mirrored else image


def plot_grid(path: Path, title: str, real: list, synthetic: list) -> None:
    columns = max(len(real), len(synthetic), 1)
    with new_figure(path, 2, columns, (1.3 * columns, 3.0)) as (fig, axes):
        fig.subplots_adjust(hspace=0.1, wspace=0.05)
        for line, (label, images) in enumerate((("real test", real), ("synthetic", synthetic))):
            for column, ax in enumerate(axes[line]):
                if column < len(images):
                    show(ax, images[column])
                else:
                    ax.set_axis_off()
            axes[line][0].set_ylabel(label)
        fig.suptitle(title, fontsize=9)


def plot_nearest(path: Path, title: str, group, class_sets, train) -> None:
    """The synthetic images closest to a training image (pixels), each above its nearest training image (of
    any class: another class's is named under it)."""
    pixels = group.memorisation["pixels"]
    closest = np.argsort(pixels["synthetic_distance"], kind="stable")[:SHOWN]
    columns = max(len(closest), 1)
    with new_figure(path, 2, columns, (1.3 * columns, 3.6)) as (fig, axes):
        for column, k in enumerate(closest):
            mirrored = bool(pixels["mirrored"][k])
            nearest_row = int(pixels["nearest_row"][k])
            other = str(pixels["nearest_class"][k])  # searched in every class: name another class's image
            show(axes[0][column], image_of(train, group.rows[k]),
                 f"row {int(group.rows[k])}\nRMS {pixels['synthetic_distance'][k]:.3g}")
            show(axes[1][column], image_of(train, nearest_row, mirrored),
                 f"train {nearest_row}" + (" mirrored" if mirrored else "")
                 + ("" if other == group.class_name else f"\n{other}".replace("$", r"\$")))
        axes[0][0].set_ylabel("synthetic")
        axes[1][0].set_ylabel("nearest real")
        fig.suptitle(f"{title}: nearest training images (pixels)", fontsize=9)


def plot_distances(path: Path, title: str, group) -> None:
    spaces = [space for space in ("pixels", "features") if space in group.memorisation]
    with new_figure(path, 1, len(spaces), (4.2 * len(spaces), 3.2)) as (fig, axes):
        for ax, space in zip(axes[0], spaces):
            memo = group.memorisation[space]
            bins = np.histogram_bin_edges(np.concatenate([memo["synthetic_distance"], memo["test_distance"]]), 25)
            ax.hist(memo["test_distance"], bins=bins, alpha=0.6, label="real test → train")
            ax.hist(memo["synthetic_distance"], bins=bins, alpha=0.6, label="synthetic → train")
            ax.axvline(memo["copy_threshold"], color="k", linestyle="--", label="copy threshold")
            ax.set(xlabel="RMS intensity difference" if space == "pixels" else "feature distance", ylabel="images")
            ax.set_title(f"{title}: nearest training image ({space})", fontsize=9)
            ax.legend(fontsize=7)


def plot_projection(path: Path, title: str, group, class_sets) -> None:
    """The first two principal axes of the class's real features (test and training together)."""
    from sklearn.decomposition import PCA

    real = np.concatenate([class_sets.test_features, class_sets.train_features])
    components = min(2, real.shape[0], real.shape[1])
    pca = PCA(components, random_state=0).fit(real)

    def project(features: np.ndarray) -> np.ndarray:
        # A single component (too few images or features) is drawn on a line at height 0.
        points = pca.transform(features) if len(features) else np.zeros((0, components))
        return np.pad(points, ((0, 0), (0, 2 - components)))

    with new_figure(path, 1, 1, (4.5, 4.0)) as (fig, axes):
        ax = axes[0][0]
        for letter, label, features in (("R", "real test", class_sets.test_features),
                                        ("T", "real train", class_sets.train_features),
                                        ("S", "synthetic", group.features)):
            points = project(features)
            ax.scatter(points[:, 0], points[:, 1], marker=f"${letter}$", s=40, alpha=0.7,
                       label=f"{letter}: {label} ({len(points)})")
        ax.set(xlabel="PC 1", ylabel="PC 2", title=title)
        ax.legend(fontsize=7)


def plot_intensity(path: Path, title: str, group, class_sets, train, chunk: int = 256) -> None:
    from synthaug.assess.memorise import thumbnails

    bins = np.linspace(0.0, 1.0, 51)
    synthetic = np.zeros(len(bins) - 1)
    for start in range(0, group.rows.size, chunk):  # counted a chunk at a time: a group may be large
        synthetic += np.histogram(thumbnails(train, group.rows[start:start + chunk]), bins)[0]
    real = np.histogram(class_sets.test_pixels, bins)[0].astype(float)
    with new_figure(path, 1, 1, (4.5, 3.0)) as (fig, axes):
        ax = axes[0][0]
        for label, counts in (("real test", real), ("synthetic", synthetic)):
            ax.stairs(counts / max(counts.sum(), 1) / np.diff(bins), bins, label=label)
        ax.set(xlabel="intensity", ylabel="density", title=title)
        ax.legend(fontsize=7)


def write_figures(directory: Path, result, train, test) -> list[dict[str, str]]:
    """Every group's figures; per group ``{kind: path relative to the output directory}``."""
    directory.mkdir(parents=True, exist_ok=True)
    drawn = []
    for group, part in zip(result.groups, group_slugs(result.groups)):
        class_sets = result.classes[group.class_name]
        # matplotlib reads text between two $ as mathtext, which a class name must not start
        title = f"{group.synthesizer} / {group.class_name}".replace("$", r"\$")
        files: dict[str, str] = {}

        def target(kind: str) -> Path:
            files[kind] = f"{FIGURES_DIR}/{kind}-{part}.png"
            return directory / f"{kind}-{part}.png"

        real = [image_of(test, class_sets.test_rows[k]) for k in evenly_spaced(class_sets.test_rows.size)]
        synthetic = [image_of(train, group.rows[k]) for k in evenly_spaced(group.rows.size)]
        plot_grid(target("grid"), title, real, synthetic)
        if "pixels" in group.memorisation:
            plot_nearest(target("nearest"), title, group, class_sets, train)
        if group.memorisation:
            plot_distances(target("distances"), title, group)
        if len(class_sets.test_features) + len(class_sets.train_features) >= 2:
            plot_projection(target("projection"), title, group, class_sets)
        plot_intensity(target("intensity"), title, group, class_sets, train)
        drawn.append(files)
    return drawn
