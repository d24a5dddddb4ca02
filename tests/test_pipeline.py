"""The pipeline's arrows composed as users call them: seeds reach fit, one work directory, no I/O in balance."""

import types
from dataclasses import dataclass

import numpy as np
import pytest

import synthaug
from synthaug import ImageSet, SynthaugError, Synthesizer
from synthaug.contract.interfaces import DEFAULT_RUN
from synthaug.pipeline import balance as balance_step
from synthaug.pipeline.checkpoint import default_work_dir, fit_synthesizer
from synthaug.registry import register_plugin


@dataclass
class RecorderConfig:
    note: str = ""


class Recorder(Synthesizer):
    """Copies images; records the seed it was fitted with and the work directory it was handed."""

    name = "recorder"
    Config = RecorderConfig
    trainable = True
    seen: list = []

    def fit(self, train, volumes=None, *, run=DEFAULT_RUN):
        work = run.work_dir
        if work is not None:
            work.mkdir(parents=True, exist_ok=True)
            (work / "state.txt").write_text(str(run.seed))
        Recorder.seen.append((run.seed, work, work is not None and work.is_dir()))

    def generate(self, train, target, n, *, seed, volumes=None, run=DEFAULT_RUN):
        idx = np.flatnonzero(train.labels == train.class_index(target))[:1].repeat(n)
        return ImageSet(train.images[idx], train.labels[idx], train.class_names, train.patient_ids[idx],
                        source_index=idx)


@pytest.fixture
def recorder():
    module = types.ModuleType("recorder_plugin")
    module.register_synthesizers = synthaug.hookimpl(lambda register: register("recorder", Recorder))
    register_plugin(module, "recorder_plugin")
    Recorder.seen = []
    return Recorder


def test_the_balance_seed_reaches_fit_as_the_run_seed(recorder, tiny_images):
    synthaug.balance(tiny_images, "recorder", test_per_class=2, seed=7)
    synthaug.balance(tiny_images, "recorder", test_per_class=2, seed=8)
    assert [s for s, _, _ in recorder.seen] == [7, 8]
    assert all(work is None for _, work, _ in recorder.seen)  # balance without work_dir keeps nothing
    with pytest.raises(SynthaugError, match="unknown option 'seed'"):  # the seed is the run's, never an option
        synthaug.balance(tiny_images, "recorder", test_per_class=2, seed=9, synth_options={"seed": 3})


def test_a_synthesizer_without_the_run_keyword_is_refused_in_one_line(tiny_images):
    class Old(Synthesizer):
        name = "old"

        def generate(self, train, target, n, *, seed, volumes=None):
            raise AssertionError("never called")

    with pytest.raises(SynthaugError, match=r"^synthesizer 'old': generate\(\) takes no run= keyword; the core hands "
                                            r"the run context to it \(def generate\(\.\.\., run=DEFAULT_RUN\)"):
        synthaug.balance(tiny_images, Old(), test_per_class=2)


def test_two_balance_seeds_train_two_pix2pix_generators(tiny_images):
    options = {"epochs": 1, "ngf": 8, "ndf": 8}
    hashes = [synthaug.balance(tiny_images, "pix2pix", test_per_class=2, seed=s, synth_options=options)
              .config["synthesizer"]["checkpoints"] for s in (0, 0, 1)]
    assert hashes[0] == hashes[1] and hashes[0] != hashes[2]


def test_fit_keeps_resumable_state_in_one_work_dir(recorder, tiny_images, tmp_path):
    out = tmp_path / "fitted"
    fit_synthesizer(tiny_images, "recorder", out, test_per_class=2, seed=5)
    seed, work, existed = recorder.seen[-1]
    assert (seed, work, existed) == (5, default_work_dir(out), True)
    assert not work.exists()  # the default work dir goes once the checkpoint is complete
    assert sorted(p.name for p in out.iterdir()) == ["split.json", "synthesizer.json"]
    kept = tmp_path / "mine"
    fit_synthesizer(tiny_images, "recorder", tmp_path / "again", test_per_class=2, seed=5, work_dir=kept)
    assert (kept / "state.txt").read_text() == "5"  # one given explicitly is kept


def test_balance_step_writes_nothing(recorder, tiny_images, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = balance_step.balance(tiny_images, "recorder", test_per_class=2, seed=0)
    assert list(tmp_path.iterdir()) == [] and result.path is None
    majority = max(result.train.counts(synthetic=False).values())
    assert result.train.counts() == {c: majority for c in result.train.class_names}
    stored = synthaug.balance(tiny_images, "recorder", test_per_class=2, seed=0, out=tmp_path / "b.h5")
    assert stored.path == tmp_path / "b.h5"
    np.testing.assert_array_equal(synthaug.read_store(stored.path, "train").images, result.train.images)
