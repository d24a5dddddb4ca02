"""Time ctsim data-set generation (cold cache), a cache hit, and a naive per-patient reference.

    python benchmarks/ctsim_generate.py [--preset demo] [--reference-patients 8]

Prints one JSON line:
- ``seconds``: generating the preset from an empty cache (example CT read and downsampled, every
  patient simulated, projected, written), ``images_per_s`` = images / seconds;
  ``cpu_seconds``: CPU time of the process over all its threads for the same step (what the job
  costs whatever else runs on the machine; wall time on a shared machine grows with its load);
- ``cache_hit_seconds``: loading the same set again;
- ``seconds_per_patient`` vs ``reference_seconds_per_patient``: the per-patient pipeline timed on the
  same few patients in the same run, with ctsim's deformation and with the naive one: MONAI's all-in-one
  ``Rand3DElastic`` (a dense per-voxel random field, Gaussian-smoothed, composed with the affine)
  instead of ctsim's control-point deformation; lesions, projection and exposure are the same.
  ``speedup_vs_reference`` = reference seconds per patient / ctsim seconds per patient.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time

import numpy as np


def naive_patient(reference, variation, seed):
    """A patient made with MONAI's Rand3DElastic at the working resolution (the reference)."""
    import torch
    from monai.transforms import Rand3DElastic

    from synthaug_plugins.ctsim.anatomy import AIR_SHIFT, Anatomy

    spacing = float(np.mean(reference.spacing))
    # Same deformation scale as ctsim: smoothing ~ control spacing / 2, magnitude ~ elastic s.d.
    sigma = variation.control_spacing_mm / spacing / 2
    elastic = Rand3DElastic(sigma_range=(sigma, sigma),
                            magnitude_range=[m / spacing * 4 for m in variation.elastic_sd_mm],
                            prob=1.0, scale_range=variation.scale_fraction, padding_mode="zeros")
    elastic.set_random_state(seed)
    smooth = torch.from_numpy(np.stack([reference.hu + AIR_SHIFT, reference.pleura_mm, reference.hilum_mm]))
    warped = np.asarray(elastic(smooth, mode="bilinear"), np.float32)
    elastic.set_random_state(seed)
    labels = np.asarray(elastic(torch.from_numpy(reference.labels[None].astype(np.float32)), mode="nearest"))
    labels = labels[0].round().astype(np.uint8)
    lung = np.isin(labels, list(reference.lobes.values()))
    return Anatomy(warped[0] - AIR_SHIFT, labels, warped[1] * lung, warped[2], reference.spacing, reference.lobes)


def time_per_patient(config, cache_dir: str, patients: int, naive: bool) -> float:
    """Seconds per patient of the whole per-patient pipeline, with ctsim's or the naive deformation."""
    from synthaug.contract.types import Volume
    from synthaug_plugins.ctsim import generate as gen
    from synthaug_plugins.ctsim.anatomy import make_patient, reference_anatomy
    from synthaug_plugins.ctsim.lesions import insert_covid, insert_viral
    from synthaug_plugins.ctsim.radiograph import draw_shot, expose

    reference = reference_anatomy(config.spacing_mm, cache_dir)
    projector = gen.line_integral_projector(config.projector)
    labels = gen.class_labels(config)[:patients]
    start = time.perf_counter()
    for i, label in enumerate(labels):
        patient = (naive_patient if naive else make_patient)(reference, config.anatomy, 1000 + i)
        rng = np.random.default_rng(i)
        name = gen.CLASS_NAMES[label]
        hu = (insert_covid(patient, config.covid, rng).hu if name == "covid" else
              insert_viral(patient, config.viral, rng).hu if name == "viral" else patient.hu)
        shot = draw_shot(config.radiograph, config.size, rng)
        for volume in ([hu, patient.hu] if name == "covid" else [hu]):
            line = projector.project(Volume(volume, patient.spacing), shot.geometry, mode="raw")
            expose(np.asarray(line).reshape(1, config.size, config.size), shot, config.radiograph)
        gen._resample_to(hu, patient.labels, patient.spacing, config.volume_size)
    return (time.perf_counter() - start) / len(labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--reference-patients", type=int, default=8)
    args = parser.parse_args()

    from synthaug.kit import progress
    from synthaug_plugins.ctsim.generate import CTSimConfig, cache_root, load_ctsim_images

    progress.set_quiet(True)
    config = CTSimConfig.preset(args.preset)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SYNTHAUG_CACHE"] = tmp  # an empty cache: a cold, complete generation
        start, cpu_start = time.perf_counter(), time.process_time()
        data = load_ctsim_images(config)
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
        start = time.perf_counter()
        again = load_ctsim_images(config)
        hit = time.perf_counter() - start
        assert np.array_equal(again.images, data.images)
        cache_dir = str(cache_root() / "ctsim")
        per_patient = time_per_patient(config, cache_dir, args.reference_patients, naive=False)
        reference = time_per_patient(config, cache_dir, args.reference_patients, naive=True)
    import torch

    print(json.dumps({
        "benchmark": "ctsim_generate", "preset": args.preset, "images": len(data), "counts": data.counts(),
        "size": config.size, "volume_size": list(config.volume_size), "seconds": round(seconds, 2),
        "images_per_s": round(len(data) / seconds, 2), "cpu_seconds": round(cpu_seconds, 1),
        "cache_hit_seconds": round(hit, 3),
        "seconds_per_patient": round(per_patient, 3),
        "reference": "MONAI Rand3DElastic per patient (dense smoothed field), same lesions/projection",
        "timed_patients": args.reference_patients, "reference_seconds_per_patient": round(reference, 3),
        "speedup_vs_reference": round(reference / per_patient, 2),
        "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(), "load_avg_1min": os.getloadavg()[0],
        "python": platform.python_version(),
    }))


if __name__ == "__main__":
    sys.exit(main())
