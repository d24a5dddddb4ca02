"""A store as the ecosystem takes it: a torch Dataset with ImageFolder's attributes, MONAI dictionary items,
a user's plain PyTorch loop (examples/torch_loop.py), and DataLoader workers."""

from __future__ import annotations

import math
import pickle
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import synthaug
from synthaug import read_store

from conftest import make_augment_store

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return make_augment_store(tmp_path_factory)


def test_the_store_is_a_torch_dataset_with_imagefolder_attributes(store):
    stored = read_store(store, "train")
    ds = synthaug.open_store(store, "train")
    assert isinstance(ds, torch.utils.data.Dataset) and isinstance(ds, synthaug.pipeline.store.StoreDataset)
    assert ds.classes == ["covid", "normal"] and ds.class_to_idx == {"covid": 0, "normal": 1}
    assert ds.targets == [0, 0, 1, 1, 1, 1, 0, 0] and ds.targets == stored.labels.tolist()
    assert ds.class_names == ("covid", "normal") and list(ds.synth) == list(stored.synth)
    assert list(ds.patient_ids) == list(stored.patient_ids) and list(ds.origin) == list(stored.origin)
    assert ds.image_shape == (1, 16, 16) and ds.config["strategy"] == "auto"
    assert list(ds.synth) == ["real"] * 6 + ["augment"] * 2
    image, label = ds[-3]
    assert label == 1 and image.dtype == torch.float32
    np.testing.assert_array_equal(image.numpy(), stored.images[5])
    with pytest.raises(IndexError):
        ds[8]


def test_transform_and_target_transform_are_applied(store):
    stored = read_store(store, "train")
    ds = synthaug.open_store(store, "train", transform=lambda x: 1 - x, target_transform=lambda y: ("c", "n")[y])
    image, label = ds[6]
    assert label == "c"
    np.testing.assert_array_equal(image.numpy(), 1 - stored.images[6])


def test_dictionary_items_take_monai_dictionary_transforms(store):
    from monai.transforms import Compose, RandFlipd, ScaleIntensityd

    stored = read_store(store, "train")
    plain = synthaug.open_store(store, "train", as_dict=True, target_transform=lambda y: y + 10)
    item = plain[7]
    assert set(item) == {"image", "label", "synth", "patient_id", "origin"}
    assert (item["label"], item["synth"], item["patient_id"]) == (10, "augment", stored.patient_ids[7])
    assert item["origin"] == stored.origin[7] and item["origin"].endswith(".png")
    monai = synthaug.open_store(store, "train", as_dict=True,
                                transform=Compose([ScaleIntensityd(keys="image"),
                                                   RandFlipd(keys="image", prob=1.0, spatial_axis=1)]))
    raw = stored.images[5]
    expected = ((raw - raw.min()) / (raw.max() - raw.min()))[:, :, ::-1]  # min-max to [0, 1], then left-right
    item = monai[5]
    assert tuple(item["image"].shape) == (1, 16, 16) and item["label"] == 1 and item["synth"] == "real"
    np.testing.assert_allclose(np.asarray(item["image"]), expected, rtol=0, atol=1e-6)


def test_a_dataloader_worker_reads_every_item(store):
    ds = synthaug.open_store(store, "train", as_dict=True)
    ds[0]  # the parent's handle is open: the worker must open its own
    copy = pickle.loads(pickle.dumps(ds))  # what a spawned worker receives
    assert isinstance(copy, torch.utils.data.Dataset) and copy._file is None
    np.testing.assert_array_equal(copy[3]["image"].numpy(), ds[3]["image"].numpy())
    batches = list(torch.utils.data.DataLoader(ds, batch_size=3, num_workers=1))
    assert torch.cat([b["label"] for b in batches]).tolist() == ds.targets
    assert sum((b["synth"] for b in batches), []) == list(ds.synth)
    images = torch.cat([b["image"] for b in batches]).numpy()
    np.testing.assert_array_equal(images, read_store(store, "train").images)


def test_the_torch_loop_example_trains_on_every_training_image(store, capsys):
    example = runpy.run_path(str(EXAMPLES / "torch_loop.py"))
    summary = example["train"](str(store), epochs=2, batch_size=3)
    assert summary["images"] == 8 and summary["classes"] == ["covid", "normal"]
    assert summary["seen"] == {"covid": 8, "normal": 8}  # two epochs of the 4 + 4 balanced images
    assert len(summary["losses"]) == 2 and all(math.isfinite(x) and x > 0 for x in summary["losses"])
    example["main"](["--store", str(store), "--epochs", "1"])
    assert "8 training images per epoch; images seen per class {" in capsys.readouterr().out


def test_importing_the_store_and_export_modules_imports_no_torch():
    code = ("import sys, synthaug, synthaug.pipeline.store, synthaug.pipeline.export; synthaug.open_store; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_code_in_docs_python_md_runs(store, tmp_path, monkeypatch):
    import re
    import shutil

    text = (Path(__file__).resolve().parents[1] / "docs" / "python.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) == 4
    shutil.copy(store, tmp_path / "balanced.h5")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile("\n".join(blocks), "docs/python.md", "exec"), namespace)
    assert namespace["summary"]["splits"]["train"] == {"covid": 4, "normal": 4}
    assert namespace["again"].counts() == {"covid": 4, "normal": 4}
    assert namespace["X_res"].shape == (10, 16, 16) and namespace["batch"]["label"].tolist() == [0, 0, 1, 1]
