"""No synthaug call changes a process-wide setting it does not restore (synthaug.kit.state).

The leak that made this file: numba's OpenMP threading layer sets OpenMP's thread count for the whole
process and torch reads the same setting, so one Siddon projection raised a process pinned to 1 torch
thread to 2 for good. Every public call is checked here with the caller's threads set to a count numba
would not choose, and with the global random generators compared too (training and fitting seed them).
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

import synthaug
from synthaug.contract.types import Volume
from synthaug.kit import progress, state
from tests.conftest import write_png


@pytest.fixture
def caller_threads():
    """The caller pins torch to a thread count numba's default (the core count) is not, then restores."""
    import os

    before = torch.get_num_threads()
    pinned = 1 if (os.cpu_count() or 1) > 1 else 3
    torch.set_num_threads(pinned)
    torch.ones(4).sum()  # torch has run at that count before synthaug is called
    yield pinned
    torch.set_num_threads(before)


def volume(size: int = 24) -> Volume:
    rng = np.random.default_rng(0)
    return Volume(hu=(rng.random((size, size, size)) * 1400 - 1000).astype(np.float32), spacing=(1.5, 1.5, 1.5))


def unchanged_by(call, caller_threads):
    """Runs ``call()``; asserts torch's threads are the caller's and nothing else process-wide moved."""
    random.seed(5)
    np.random.seed(5)
    torch.manual_seed(5)
    before = state.snapshot()
    result = call()
    assert torch.get_num_threads() == caller_threads
    assert state.differences(before, state.snapshot()) == []
    return result


FRESH_PROCESS = """
import sys
import numpy as np
import torch
torch.set_num_threads(1)
torch.ones(4).sum()
assert torch.get_num_threads() == 1  # (the leak shows after torch has read its count once, as a caller does)
import synthaug
from synthaug.contract.types import Geometry, Volume
hu = (np.random.default_rng(0).random((24, 24, 24)) * 1400 - 1000).astype(np.float32)
volume = Volume(hu=hu, spacing=(1.5, 1.5, 1.5))
if sys.argv[1] == "raw-kernel":
    import numba
    from synthaug_plugins.siddon_drr.kernel import trace_rays
    from synthaug_plugins.siddon_drr.rays import index_rays
    _, sources, targets, lengths = index_rays(Geometry(height=16, width=16), hu.shape, volume.spacing)
    trace_rays(hu, sources, targets, lengths, 2e-5, 0.02)
    print(numba.threading_layer(), torch.get_num_threads())
else:
    synthaug.project(volume, "siddon", height=16, width=16)
    print("project", torch.get_num_threads())
"""


def threads_after(what: str) -> tuple[str, int]:
    """torch's threads in a fresh process pinned to 1 after ``what`` (numba's thread pool starts once per
    process, and with it the leak: in this test process another test may have started it already)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", FRESH_PROCESS, what], capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "2"})
    assert done.returncode == 0, done.stderr[-2000:]
    name, threads = done.stdout.split()
    return name, int(threads)


def test_a_projection_hands_torch_its_threads_back_though_numbas_kernel_alone_does_not():
    """The control: numba's raw kernel does move torch's threads under the OpenMP layer on a machine of
    more than one core (so the check after it can fail); the projector calls it through
    kit.state.kept and does not."""
    import os

    layer, threads = threads_after("raw-kernel")
    if layer == "omp" and (os.cpu_count() or 1) > 1:
        assert threads != 1  # the leak, reproduced
    assert threads_after("project") == ("project", 1)


def test_the_projector_in_this_process_hands_every_setting_back(caller_threads):
    image = unchanged_by(lambda: synthaug.project(volume(), "siddon", height=16, width=16), caller_threads)
    assert image.shape == (1, 16, 16) and np.isfinite(image).all()


def test_balance_fit_generate_train_and_evaluate_hand_every_setting_back(tmp_path, caller_threads):
    for name, n, value in (("covid", 4, 0.7), ("normal", 8, 0.3)):
        for k in range(n):
            write_png(tmp_path / "folder" / name / f"{name}-{k}.png", size=32, value=value, seed=k)
    images = unchanged_by(lambda: synthaug.load_images("imagefolder", tmp_path / "folder", size=32), caller_threads)
    fitted = tmp_path / "p2p"
    unchanged_by(lambda: synthaug.fit_synthesizer(images, "pix2pix", fitted, test_per_class=1,
                                                  synth_options={"epochs": 1, "ngf": 8, "ndf": 8}), caller_threads)
    store = tmp_path / "b.h5"
    unchanged_by(lambda: synthaug.balance(images, "pix2pix", test_per_class=1, out=store, synth_checkpoint=fitted),
                 caller_threads)
    run = unchanged_by(lambda: synthaug.train(store, tmp_path / "run", classifier="resnet50", epochs=1, batch_size=4,
                                              classifier_options={"width": 0.25}), caller_threads)
    metrics = unchanged_by(lambda: synthaug.evaluate(run), caller_threads)
    assert metrics["n"] == 2
    X, y = np.random.default_rng(0).random((6, 1, 16, 16)).astype(np.float32), np.array([0, 0, 1, 1, 1, 1])
    X_res, y_res = unchanged_by(lambda: synthaug.resample(X, y, "augment"), caller_threads)
    assert np.bincount(y_res).tolist() == [4, 4]


def test_kept_restores_every_setting_even_when_the_body_raises():
    before = state.snapshot()
    with pytest.raises(RuntimeError):
        with state.kept():
            torch.set_num_threads(torch.get_num_threads() + 1)
            torch.manual_seed(123)
            np.random.seed(123)
            random.seed(123)
            torch.set_default_dtype(torch.float64)
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = not torch.backends.cudnn.benchmark
            torch.set_float32_matmul_precision("medium")
            progress.set_quiet(not progress.is_quiet())
            raise RuntimeError("the body failed")
    assert state.differences(before, state.snapshot()) == []
    assert torch.get_default_dtype() == torch.float32 and not torch.are_deterministic_algorithms_enabled()


def test_differences_names_each_setting_that_moved():
    before = state.snapshot()
    with state.kept():
        torch.set_num_threads(torch.get_num_threads() + 1)
        torch.rand(1)
        np.random.random()
        torch.set_default_dtype(torch.float64)
        changed = state.differences(before, state.snapshot())
        ignoring_generators = state.differences(before, state.snapshot(), generators=False)
    assert [c.split(" (")[0] for c in changed] == ["numpy's global random state", "torch threads", "torch rng",
                                                   "torch default dtype"]
    assert [c.split(" (")[0] for c in ignoring_generators] == ["torch threads", "torch default dtype"]
