"""Every script in benchmarks/ at a tiny size: it runs, prints exactly one JSON line that parses, holds
the figures its docstring documents and the ratio it promises against a reference measured in the
same run (a finite, positive number).

Benchmarks that nothing runs rot: classifier_throughput.py failed on a training option the layered
core had removed, and nobody noticed. Sizes this small measure nothing, so no figure is judged here
(performance is measured by running the scripts at their default sizes); where a script also checks
a behaviour (torchrun's stores equal one process's, the store's images read back bit for bit), that
is asserted. Each script runs in its own process, as a user runs it; none is imported here.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
HELPERS = {"step_common.py"}  # imported by the step benchmarks, prints nothing itself


def run_benchmark(script: str, *args: str) -> dict:
    """Run ``benchmarks/script`` with ``args``; its one stdout line, parsed."""
    env = {**os.environ, "SYNTHAUG_QUIET": "1", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, str(BENCHMARKS / script), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, f"{script} failed:\n{done.stderr[-3000:]}"
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"{script} printed {len(lines)} lines:\n{done.stdout[-3000:]}"
    return json.loads(lines[0])


def positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def test_every_benchmark_has_a_smoke_run():
    scripts = {p.name for p in BENCHMARKS.glob("*.py")} - HELPERS
    tested = {name.removeprefix("test_").removesuffix("_smoke") + ".py"
              for name in globals() if name.startswith("test_") and name.endswith("_smoke")}
    assert scripts == tested


def test_ddpm_smoke():
    result = run_benchmark("ddpm.py", "--size", "16", "--channels", "8,16", "--batch", "2", "--train-steps", "1",
                           "--sample-batch", "2", "--ddim-steps", "2", "--repeats", "1")
    assert result["benchmark"] == "ddpm" and result["channels"] == [8, 16] and result["size"] == 16
    train, sample = result["train"], result["sample"]
    assert train["batch"] == 2 and len(train["step_s"]["synthaug"]) == len(train["step_s"]["reference"]) == 1
    assert sample["batch"] == 2 and sample["ddim_steps"] == 2 and len(sample["run_s"]["reference"]) == 1
    for row in (train, sample):
        assert positive(row["synthaug_img_s"]) and positive(row["reference_img_s"]) and positive(row["ratio"])
        assert positive(row["ratio_fastest"])


def test_demo_smoke():
    result = run_benchmark("demo.py", "--preset", "tiny")
    stages = result["stages"]
    names = list(stages)
    assert names[0] == "data" and names[-2:] == ["quality seed0", "report"]
    assert sum(n.startswith("fit ") for n in names) == 1  # pix2pix, the one arm that learns
    assert sorted(n for n in names if n.startswith("balance ")) == [
        f"balance {arm}-seed0" for arm in ("augment", "duplicate", "synthesis", "unbalanced")]
    assert sum(n.startswith("cell ") for n in names) == 6  # the demo's six arms
    assert all(s >= 0 for s in stages.values()) and positive(result["total_seconds"])
    assert set(result["seconds_by_kind"]) == {"data", "fit", "balance", "cell", "quality", "report"}
    assert result["cell"].startswith("unbalanced--") and stages[f"cell {result['cell']}"] == result["cell_seconds"]
    reference = result["reference"]
    assert reference["epochs"] == 1
    assert reference["steps"] == math.ceil(reference["train_images"] / reference["batch_size"])
    assert positive(reference["seconds"]) and positive(result["cell_overhead_ratio"])
    assert positive(result["peak_rss_mb"]) and result["preset"] == "tiny" and result["synthesizer"] == "pix2pix"
    assert {"torch", "threads", "cpus", "load_avg_1min"} <= set(result)


def test_classifier_throughput_smoke():
    result = run_benchmark("classifier_throughput.py", "--steps", "1", "--batch-size", "2", "--networks", "resnet50",
                           "--size", "64")
    (network,) = result["networks"]
    assert network["network"] == "resnet50" and result["image_size"] == 64
    assert positive(network["synthaug_images_per_s"]) and positive(network["reference_images_per_s"])
    assert positive(network["ratio"]) and result["min_ratio"] == network["ratio"]
    assert all(positive(v["ratio"]) for v in network["all"].values())


def _step_results(result: dict, benchmark: str) -> None:
    assert result["benchmark"] == benchmark and result["steps"] == 1
    (row,) = result["results"]
    assert row["batch"] in (1, 2) and len(row["step_s"]["synthaug"]) == len(row["step_s"]["reference"]) == 1
    assert positive(row["synthaug_img_s"]) and positive(row["reference_img_s"]) and positive(row["ratio"])


def test_acgan_step_smoke():
    _step_results(run_benchmark("acgan_step.py", "--size", "8", "--batches", "2", "--steps", "1"), "acgan_step")


def test_pix2pix_step_smoke():
    # 256 px is the size the plain reference is written for; the width is what makes it quick
    result = run_benchmark("pix2pix_step.py", "--batches", "1", "--steps", "1", "--ngf", "8")
    _step_results(result, "pix2pix_step")
    assert result["ngf"] == 8


def test_ctsim_generate_smoke():
    result = run_benchmark("ctsim_generate.py", "--preset", "tiny", "--reference-patients", "1")
    assert result["images"] == sum(result["counts"].values()) and result["timed_patients"] == 1
    for key in ("seconds", "images_per_s", "cpu_seconds", "cache_hit_seconds", "seconds_per_patient",
                "reference_seconds_per_patient", "speedup_vs_reference"):
        assert positive(result[key]), key


def test_drr_smoke():
    # DiffDRR and nanodrr live in their own venvs, which `benchmarks/drr.py --setup` installs from PyPI
    # (minutes, GBs): the smoke run compares with synthaug's own torch renderer only; the comparison with
    # the two references is run by hand (README, Benchmarks), not by a test that would skip everywhere
    result = run_benchmark("drr.py", "--references", "none", "--size", "16", "--repeats", "1")
    assert result["rays"] == 256 and result["references"] == "none"
    for key in ("synthaug_siddon_rays_per_s", "synthaug_torch_cpu_rays_per_s", "speedup_vs_torch", "image_max_mu_mm"):
        assert positive(result[key]), key
    assert result["torch_vs_numba_max_diff_pct_of_max"] < 1.0  # the two renderers draw the same image


def test_memory_smoke():
    result = run_benchmark("memory.py", "--sizes", "20", "40", "--train-steps", "1", "--size", "32")
    assert set(result["runs"]) == {"20", "40"} and result["image_side"] == 32
    for run in result["runs"].values():
        assert positive(run["balance_peak_mb"]) and positive(run["train_peak_mb"])
        assert positive(run["store_bytes_per_image"])
    assert positive(result["balance_ratio"]) and positive(result["train_ratio"])


def test_project_speed_smoke():
    result = run_benchmark("project_speed.py", "--cases", "32:16", "--repeats", "1")
    (case,) = result["cases"]
    assert case["volume"] == "32x32x32" and case["detector"] == 16
    assert positive(case["siddon_median_s"]) and positive(case["parallel_median_s"])
    assert positive(case["siddon_vs_parallel"]) and result["max_ratio"] == case["siddon_vs_parallel"]


def test_quality_smoke():
    result = run_benchmark("quality.py", "--images", "40", "--size", "16", "--feature-images", "16")
    assert result["images"] == 40 and result["figures"]["synthetic"] > 0
    for key in ("seconds", "cpu_seconds", "peak_rss_mb", "ratio_seconds", "ratio_rss"):
        assert positive(result[key]), key
    assert positive(result["reference"]["seconds"]) and positive(result["reference"]["peak_rss_mb"])


def test_store_smoke():
    result = run_benchmark("store.py", "--images", "20")
    assert result["values_identical"] is True  # uint8 store, float32 store and the PNGs: the same values
    assert all(positive(v) for v in result["bytes_per_image"].values())
    assert all(positive(v) for v in result["images_per_s"].values())
    for key in ("uint8_vs_png_read", "float32_vs_png_read", "uint8_vs_float32_read", "uint8_vs_float32_bytes"):
        assert positive(result[key]), key


def test_torchrun_smoke():
    result = run_benchmark("torchrun.py", "--images", "40", "--size", "32", "--epochs", "1")
    for name in ("augment", "fit", "generate"):
        assert positive(result[name]["seconds_1"]) and positive(result[name]["speedup"]), name
    # what docs/scaling.md promises: the stores two processes write are one process's, byte for byte
    assert result["augment"]["same_bytes"] is True and result["generate"]["same_bytes"] is True
    assert result["fit"]["generator_difference"] >= 0 and positive(result["fit"]["other_seed_difference"])


def test_xpgan_figure_smoke(tmp_path):
    out = tmp_path / "figure.png"
    result = run_benchmark("xpgan_figure.py", "--preset", "tiny", "--steps", "1", "--batch-size", "2",
                           "--classifier", "small-cnn", "--per-class", "1", "--out", str(out))
    assert out.stat().st_size > 0 and result["steps"] == 1
    assert positive(result["drr_l1_before"]) and positive(result["drr_l1_after"]) and positive(result["drr_l1_ratio"])
