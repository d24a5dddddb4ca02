import json
import os

import h5py
import numpy as np
import pytest

from synthaug import SynthaugError, open_store, read_store, write_store
from synthaug.kit.files import atomic_path
from synthaug.pipeline.store import SCHEMA_VERSION, store_info


def test_round_trip_with_provenance_extras_and_config(tmp_path, tiny_images):
    data = tiny_images.with_provenance(extras={"twin": tiny_images.images * 0.5,
                                               "has_twin": np.arange(len(tiny_images)) % 2 == 0})
    path = write_store(tmp_path / "s.h5", {"train": data, "test": data.subset([0, 5])}, {"seed": 3})
    back = read_store(path, "train")
    np.testing.assert_array_equal(back.images, data.images)
    assert list(back.patient_ids) == list(data.patient_ids) and list(back.origin) == list(data.origin)
    np.testing.assert_array_equal(back.extras["twin"], data.extras["twin"])
    assert back.extras["has_twin"].dtype == bool
    with h5py.File(path) as f:
        assert f.attrs["schema_version"] == SCHEMA_VERSION
        assert json.loads(f.attrs["config"]) == {"seed": 3}
        images = f["train/images"]
        assert images.chunks == (1, 1, 16, 16) and images.compression == "gzip"
    info = store_info(path)
    assert info["splits"]["test"]["classes"] == {"covid": 1, "normal": 1, "viral": 0}
    assert info["image_shape"] == [1, 16, 16]


def test_lazy_dataset_reads_one_image_at_a_time(tmp_path, tiny_images):
    import torch

    path = write_store(tmp_path / "s.h5", {"train": tiny_images})
    ds = open_store(path, "train")
    assert len(ds) == len(tiny_images) and ds.class_names == tiny_images.class_names
    image, label = ds[5]
    assert isinstance(image, torch.Tensor) and image.shape == (1, 16, 16) and label == 1
    torch.testing.assert_close(image, torch.from_numpy(tiny_images.images[5]))
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=1)
    assert sum(len(b[0]) for b in loader) == len(tiny_images)
    # Lazy: the dataset holds labels, not images.
    assert not any(isinstance(v, np.ndarray) and v.nbytes >= tiny_images.images.nbytes for v in vars(ds).values())


def test_interrupted_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.h5"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("killed")
    assert os.listdir(tmp_path) == []


def test_bad_store_files(tmp_path, tiny_images):
    with pytest.raises(SynthaugError, match="no such store file"):
        read_store(tmp_path / "missing.h5")
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5")
    with pytest.raises(SynthaugError, match="junk.h5: not a readable HDF5 store"):
        read_store(junk)
    path = write_store(tmp_path / "s.h5", {"train": tiny_images})
    with pytest.raises(SynthaugError, match=r"no split 'test'; the store has train"):
        open_store(path, "test")
