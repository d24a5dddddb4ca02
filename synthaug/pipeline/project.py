"""Project a CT volume to a radiograph: :func:`project` (an array) and :func:`project_file` (what
``synthaug project`` does, as a Python call)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from synthaug.contract.types import Geometry, Volume
from synthaug.errors import SynthaugError
from synthaug.kit.state import keeps_state


def save_image(image: np.ndarray, out: str | Path, mode: str) -> Path:
    """``.npy``: the float32 ``(H, W)`` as computed; ``.png``: 8-bit grey (raw mode scaled by its max)."""
    from synthaug.kit.files import atomic_path

    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".png", ".npy"):
        raise SynthaugError(f"{out}: output must end in .png or .npy")
    out.parent.mkdir(parents=True, exist_ok=True)
    plane = np.asarray(image, dtype=np.float32).reshape(image.shape[-2:])
    with atomic_path(out) as tmp:
        if suffix == ".npy":
            with open(tmp, "wb") as handle:
                np.save(handle, plane)
        else:
            from PIL import Image

            if mode == "raw":
                peak = float(plane.max())
                plane = plane / peak if peak > 0 else plane
            pixels = np.clip(np.rint(plane * 255.0), 0, 255).astype(np.uint8)
            Image.fromarray(pixels, mode="L").save(tmp, format="PNG")
    return out


def project(volume: Volume, projector: str, *, height: int = 256, width: int = 256,
            pixel_spacing: float | None = None, sdd: float = 1020.0, sid: float = 850.0,
            pose=(0, 0, 0, 0, 0, 0), view: str = "AP", beam: str = "cone", mode: str = "radiograph",
            checkpoint: str | Path | None = None, **projector_options: Any) -> np.ndarray:
    """``volume`` rendered by the registered ``projector`` (``siddon``, ``parallel``, ``xpgan`` with a
    ``checkpoint``, ...) as a float32 ``(1, height, width)`` image: in [0, 1] for ``mode="radiograph"``,
    line integrals for ``mode="raw"``. The geometry's defaults are a standard chest PA/AP set-up
    (source-detector 1020 mm, source-isocentre 850 mm); see docs/projectors.md."""
    return _render(volume, projector, height, width, pixel_spacing, sdd, sid, pose, view, beam, mode,
                   checkpoint, projector_options)[0]


@keeps_state
def _render(volume, projector, height, width, pixel_spacing, sdd, sid, pose, view, beam, mode, checkpoint,
            projector_options) -> tuple[np.ndarray, Geometry]:
    from synthaug.registry import create

    geometry = Geometry(sdd=sdd, sid=sid, height=height, width=width, pixel_spacing=pixel_spacing,
                        pose=tuple(pose), view=view, beam=beam)
    options = dict(projector_options)
    if checkpoint is not None:
        options["checkpoint"] = str(checkpoint)
    model = create("projector", projector, **options)
    image = np.asarray(model.project(volume, geometry, mode=mode), dtype=np.float32)
    return image.reshape(1, *image.shape[-2:]), geometry


def project_file(volume: Volume, out: str | Path, *, projector: str, height: int = 256,
                 width: int = 256, pixel_spacing: float | None = None, sdd: float = 1020.0, sid: float = 850.0,
                 pose=(0, 0, 0, 0, 0, 0), view: str = "AP", beam: str = "cone", mode: str = "radiograph",
                 checkpoint: str | None = None, **projector_options: Any) -> dict[str, Any]:
    """Project ``volume`` with the registered ``projector`` (:func:`project`), write PNG or NPY; returns
    a summary. The volume comes from any volume source (``synthaug project`` reads one NIfTI file
    through the registered ``nifti`` source)."""
    started = time.perf_counter()
    image, geometry = _render(volume, projector, height, width, pixel_spacing, sdd, sid, pose, view, beam, mode,
                              checkpoint, projector_options)
    seconds = time.perf_counter() - started
    path = save_image(image, out, mode)
    extent = tuple(n * s for n, s in zip(volume.hu.shape, volume.spacing))
    resolved = geometry.fitted(extent)
    return {"out": str(path), "height": height, "width": width, "mode": mode, "projector": projector,
            "pixel_spacing": resolved.pixel_spacing, "seconds": seconds}
