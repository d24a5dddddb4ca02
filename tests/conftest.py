"""Shared fixtures: small on-disk data sets in the real layouts, built per test."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest


def write_png(path: Path, size: int = 40, value: float = 0.5, rgb: bool = False, seed: int = 0, bits: int = 8) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    arr = np.clip(value + 0.2 * rng.standard_normal((size, size)), 0, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    if bits == 16:
        Image.fromarray((arr * 65535).astype(np.uint16)).save(path)
    elif rgb:
        Image.fromarray((np.stack([arr] * 3, -1) * 255).astype(np.uint8), "RGB").save(path)
    else:
        Image.fromarray((arr * 255).astype(np.uint8), "L").save(path)


def make_kaggle_first(root: Path, counts=(6, 10, 11), size: int = 40) -> Path:
    """First release: 'COVID-19 Radiography Database/{COVID-19,NORMAL,Viral Pneumonia}/NAME (k).png'."""
    base = root / "COVID-19 Radiography Database"
    for (folder, value), n in zip((("COVID-19", 0.7), ("NORMAL", 0.3), ("Viral Pneumonia", 0.5)), counts):
        (base / folder).mkdir(parents=True, exist_ok=True)
        for k in range(1, n + 1):
            # Some files RGB, as in the real release (mixed modes).
            write_png(base / folder / f"{folder} ({k}).png", size, value, rgb=(k % 3 == 0), seed=k)
    for name in ("COVID-19.metadata.xlsx", "NORMAL.metadata.xlsx", "Viral Pneumonia.matadata.xlsx", "README.md.txt"):
        (base / name).write_bytes(b"not an image")
    return root


def make_augment_store(tmp_path_factory) -> Path:
    """An 8-bit store balanced by augment from a 16-px imagefolder (covid 3 at 0.7, normal 5 at 0.3;
    one real test image a class): train covid 2 real + 2 augment, normal 4."""
    import synthaug

    root = tmp_path_factory.mktemp("folder")
    for name, n, value in (("covid", 3, 0.7), ("normal", 5, 0.3)):
        for k in range(n):
            write_png(root / name / f"{name}-{k}.png", size=16, value=value, seed=k)
    out = tmp_path_factory.mktemp("store") / "b.h5"
    synthaug.balance(synthaug.load_images("imagefolder", root), "augment", out=out, test_per_class=1)
    return out


def make_kaggle_later(root: Path, counts=(6, 10, 11, 4), size: int = 40) -> Path:
    """Later release: 'COVID-19_Radiography_Dataset/{COVID,Normal,Viral Pneumonia,Lung_Opacity}/images/*.png'."""
    base = root / "COVID-19_Radiography_Dataset"
    spec = (("COVID", 0.7), ("Normal", 0.3), ("Viral Pneumonia", 0.5), ("Lung_Opacity", 0.6))
    for (folder, value), n in zip(spec, counts):
        for k in range(1, n + 1):
            write_png(base / folder / "images" / f"{folder}-{k}.png", size, value, seed=k)
            write_png(base / folder / "masks" / f"{folder}-{k}.png", size // 2, 1.0, seed=k)  # masks: ignored
        (base / f"{folder}.metadata.xlsx").write_bytes(b"not an image")
    (base / "README.md.txt").write_text("readme")
    return root


@pytest.fixture
def kaggle_first(tmp_path) -> Path:
    return make_kaggle_first(tmp_path / "first")


@pytest.fixture
def kaggle_later(tmp_path) -> Path:
    return make_kaggle_later(tmp_path / "later")


@pytest.fixture
def tiny_images():
    """An in-memory ImageSet: 3 classes, 4/8/9 images, 16 px, one patient each."""
    from synthaug.contract.types import ImageSet

    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], [4, 8, 9])
    images = (rng.random((len(labels), 1, 16, 16)) * 0.5 + labels[:, None, None, None] * 0.2).astype(np.float32)
    return ImageSet(images, labels, ("covid", "normal", "viral"), [f"p{i}" for i in range(len(labels))],
                    origin=[f"img{i}.png" for i in range(len(labels))])


def pytest_addoption(parser):
    parser.addoption("--shuffle", metavar="SEED", type=int, default=None,
                     help="run the tests in a random order drawn from SEED (files and the tests within "
                          "them); the suite must pass in any order")


def pytest_collection_modifyitems(config, items):
    seed = config.getoption("--shuffle")
    if seed is not None:  # every xdist worker draws the same order from the same seed, as xdist requires
        import random

        random.Random(seed).shuffle(items)


#: torch threads of the whole run (and OMP_NUM_THREADS of the commands the tests start): 1 by default,
#: since `make test` runs two workers on two cores; `SYNTHAUG_TEST_THREADS=2 make test` checks that the
#: suite passes the same with more.
THREADS = int(os.environ.get("SYNTHAUG_TEST_THREADS", "1"))


@pytest.fixture(scope="session", autouse=True)
def _process_settings():
    """The process-wide settings of the run, set once here and nowhere else (no test module sets any
    at import): torch threads, quiet progress bars, and the same for the commands the tests start."""
    import torch

    from synthaug.kit import progress

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SYNTHAUG_QUIET", "1")
        mp.setenv("OMP_NUM_THREADS", str(THREADS))
        torch.set_num_threads(THREADS)
        progress.set_quiet(True)
        yield


@pytest.fixture(autouse=True)
def _no_leaked_process_state(request):
    """Each test starts from the same global random state and must leave every other process-wide
    setting as it found it.

    - The torch, numpy and Python global generators are seeded with 0 before each test, so a test
      draws the same numbers alone, in the suite and in any order. They are not compared afterwards:
      building any torch network draws its initial weights from torch's global generator, so a test
      cannot avoid moving it. That no synthaug call moves or reseeds them is tested where it belongs
      (tests/test_process_state.py: every public call hands them back).
    - A test that leaves torch's thread count, default dtype, deterministic or cuDNN flags, matmul
      precision or progress quiet changed fails: a library call must hand them back
      (synthaug.kit.state.kept), and a test that changes one must restore it. The settings are put
      back before the failure, so that one leak fails one test."""
    import random

    import torch

    from synthaug.kit import state

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    before = state.snapshot()
    yield
    changed = state.differences(before, state.snapshot(), generators=False)
    if changed:
        state.restore(before)
        pytest.fail(f"{request.node.nodeid} left process-wide state changed: {'; '.join(changed)}", pytrace=False)


@pytest.fixture(scope="session", autouse=True)
def _session_cache(tmp_path_factory):
    """A fresh ctsim cache for the whole run: tests never depend on what an earlier run left behind."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # one cache for the run's workers (their base temp folders share a parent): a data set one worker
        # generated is not generated again by the other; ctsim's cache lets one writer fill an entry
        # while the other waits for it (docs/reliability.md)
        cache = tmp_path_factory.getbasetemp().parent / "synthaug-cache"
        cache.mkdir(exist_ok=True)
    else:
        cache = tmp_path_factory.mktemp("synthaug-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SYNTHAUG_CACHE", str(cache))
        yield


@pytest.fixture(autouse=True)
def _fresh_registry():
    from synthaug.registry import reset_registry

    reset_registry()
    yield
    reset_registry()
