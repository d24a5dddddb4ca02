"""Shared fixtures: small on-disk data sets in the real layouts, built per test."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("SYNTHAUG_QUIET", "1")  # no progress bars in test output
if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test` runs two workers on two cores: one thread each,
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # their subprocesses included (no oversubscription)


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
