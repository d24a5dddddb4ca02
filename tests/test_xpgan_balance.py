"""balance with ``xpgan`` and ``drr`` end to end: ctsim at 32 px, a MosMed-layout fixture of tiny
.nii.gz studies (CT-0..CT-4), the CLI, and ``synthaug project --projector xpgan``."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import synthaug
from synthaug.cli import main
from synthaug.contract.types import ImageSet
from synthaug.errors import SynthaugError
from synthaug.kit.files import file_hash
from synthaug.pipeline.store import read_store
from synthaug.registry import create

from xpgan_helpers import SmallCNN, ctsim, phantom_hu, register_small_classifier, small_cnn  # noqa: F401 (fixtures)

# poses_per_volume=2: one jitter pose besides the identity, so these end-to-end runs cover that option
XPGAN_FAST = dict(preset="small", batch_size=4, poses_per_volume=2, max_steps=2, r1_gamma=0.0, volume_shape=[16, 16, 8],
                  classifier="xpgan-test-cnn")


class LoadingCNN(SmallCNN):
    """The small CNN with a real ``load_weights``: torchvision-style names are its own, ``7.`` the head."""

    name = "xpgan-test-loading-cnn"

    def load_weights(self, model, path):
        from synthaug.kit.transfer import load_mapped, read_state_dict

        return load_mapped(model, path, read_state_dict(path), lambda key: key, network=self.name,
                           head_prefixes=("7.",), first_conv="0.weight")


class _LoadingPlugin:
    @synthaug.hookimpl
    def register_classifiers(self, register):
        register(LoadingCNN.name, LoadingCNN, summary="xpgan tests: a small CNN that loads weights")


def register_loading_classifier() -> str:
    registry = synthaug.get_registry()
    if LoadingCNN.name not in registry.names("classifier"):
        registry.add_plugin(_LoadingPlugin(), "xpgan-test-loading-plugin")
    return LoadingCNN.name


def recording_trainer(monkeypatch) -> dict:
    """Replace xpgan's JointTrainer by one that records C's state at the start and the shape of every
    batch C sees; returns the record."""
    from synthaug_plugins.xpgan_projector import training

    record = {"start": None, "inputs": []}

    class Recording(training.JointTrainer):
        def __init__(self, network_config, classifier, *args, **kwargs):
            record["start"] = {k: v.detach().clone() for k, v in classifier.state_dict().items()}
            classifier.register_forward_pre_hook(lambda module, args: record["inputs"].append(tuple(args[0].shape)))
            super().__init__(network_config, classifier, *args, **kwargs)

    monkeypatch.setattr(training, "JointTrainer", Recording)
    return record


def make_mosmed(root: Path, per_grade=(2, 1, 1, 1, 1), shape=(24, 24, 12)) -> Path:
    """studies/CT-k/study_XXXX.nii.gz: chest phantoms, a lesion in CT-1..CT-4, 12 x 12 x 20 mm voxels."""
    import nibabel as nib

    number = 0
    for grade, count in enumerate(per_grade):
        folder = root / "studies" / f"CT-{grade}"
        folder.mkdir(parents=True)
        for _ in range(count):
            number += 1
            hu = phantom_hu(shape, lesion=grade > 0, seed=number)
            affine = np.diag([12.0, 12.0, 20.0, 1.0])
            nib.save(nib.Nifti1Image(hu.astype(np.int16), affine), folder / f"study_{number:04d}.nii.gz")
    return root


def two_class_images(n_covid=3, n_normal=9, size=32) -> ImageSet:
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], [n_covid, n_normal])
    return ImageSet(rng.random((len(labels), 1, size, size), dtype=np.float32), labels, ("covid", "normal"),
                    [f"cxr{i}" for i in range(len(labels))], origin=[f"cxr{i}.png" for i in range(len(labels))])


def assert_synthetic_from_volumes(train: ImageSet, name: str, volumes, target: str):
    synthetic = np.flatnonzero(train.synth == name)
    assert len(synthetic) > 0
    target_index = train.class_index(target)
    assert set(train.labels[synthetic]) == {target_index}
    for i in synthetic:
        volume = int(train.source_index[i])
        assert train.origin[i] == volumes.origins[volume]  # provenance names the source volume
        assert volumes.class_names[volumes.labels[volume]] in (target, "covid")
    assert 0 <= train.images[synthetic].min() and train.images[synthetic].max() <= 1


@pytest.mark.parametrize("name", ["xpgan", "drr"])
def test_balance_ctsim(ctsim, tmp_path, name):
    images, volumes = ctsim
    options = XPGAN_FAST if name == "xpgan" else {}
    result = synthaug.balance(images, name, test_per_class=1, volumes=volumes, synth_options=options,
                              out=tmp_path / "b.h5")
    train = read_store(tmp_path / "b.h5", "train")
    assert train.counts() == {"covid": 12, "normal": 12, "viral": 12}
    assert result.deficits == {"covid": 11, "normal": 0, "viral": 0}
    assert_synthetic_from_volumes(train, name, volumes, "covid")
    test = read_store(tmp_path / "b.h5", "test")
    assert (test.synth == "real").all()
    # ctsim's CTs are the radiographs' patients: no test patient's CT was projected into training
    synthetic = train.synth == name
    assert not set(train.patient_ids[synthetic]) & set(test.patient_ids)
    assert result.config["volumes_held_out"] == 3


@pytest.mark.parametrize("name", ["xpgan", "drr"])
def test_balance_mosmed_layout(tmp_path, name):
    volumes = synthaug.load_volumes("mosmed", make_mosmed(tmp_path / "mosmed"))
    assert volumes.class_names == ("normal", "covid") and volumes.counts() == {"normal": 2, "covid": 4}
    options = XPGAN_FAST if name == "xpgan" else {}
    result = synthaug.balance(two_class_images(), name, test_per_class=1, volumes=volumes, synth_options=options)
    train = result.train
    assert train.counts() == {"covid": 8, "normal": 8}
    assert_synthetic_from_volumes(train, name, volumes, "covid")
    made_from = {Path(train.origin[i]).parent.name for i in np.flatnonzero(train.synth == name)}
    assert made_from <= {"CT-1", "CT-2", "CT-3", "CT-4"} and len(made_from) == 4  # every covid study used


def test_balance_refuses_unlabeled_nifti_before_training(tmp_path):
    make_mosmed(tmp_path / "m")
    volumes = synthaug.load_volumes("nifti", tmp_path / "m" / "studies" / "CT-1")  # one folder: no classes
    with pytest.raises(SynthaugError, match="carry no class labels"):
        synthaug.balance(two_class_images(), "drr", test_per_class=1, volumes=volumes)


def test_c_starts_from_classifier_weights_and_its_run_records_them(ctsim, tmp_path, monkeypatch):
    import torch

    images, volumes = ctsim
    name = register_loading_classifier()
    torch.manual_seed(5)
    state = {k: torch.randn_like(v) if v.is_floating_point() else v
             for k, v in create("classifier", name).build(1, 3).state_dict().items()}
    state["0.weight"] = torch.randn(8, 3, 3, 3)  # an RGB first conv, summed for the grey images
    weights = tmp_path / "imagenet.pth"
    torch.save(state, weights)
    record = recording_trainer(monkeypatch)
    synth = create("synthesizer", "xpgan", **{**XPGAN_FAST, "classifier": name}, classifier_weights=str(weights))
    synth.fit(images, volumes)
    # joint training began from the file: every backbone tensor is the file's, the head is new
    started = record["start"]
    assert torch.equal(started["0.weight"], state["0.weight"].sum(1, keepdim=True))
    assert all(torch.equal(started[k], v) for k, v in state.items() if k != "0.weight" and not k.startswith("7."))
    assert not torch.equal(started["7.weight"], state["7.weight"])
    synth.save(tmp_path / "ckpt")
    run = json.loads((tmp_path / "ckpt" / "classifier" / "manifest.json").read_text())
    assert run["config"]["classifier_weights"] == str(weights) and run["config"]["mode"] == "finetune"
    assert run["weights"]["path"] == str(weights) and run["weights"]["sha256"] == file_hash(weights)
    assert run["weights"]["missing"] == ["7.bias", "7.weight"] and not run["weights"]["unexpected"]
    assert len(run["weights"]["matched"]) == len(state) - 2
    assert run["kind"] == "synthaug-train-run" and run["status"] == "finished"
    assert run["best"] == {"epoch": 2, "score": None} and run["trained_by"].startswith("xpgan")
    assert (tmp_path / "ckpt" / "classifier" / "checkpoints" / "best.pt").is_file()
    weights.unlink()  # C comes back from the checkpoint: its starting weights are not read again
    loaded = type(synth).load(tmp_path / "ckpt")
    for key, value in synth.classifier.state_dict().items():
        assert np.array_equal(loaded.classifier.state_dict()[key].cpu().numpy(), value.cpu().numpy()), key
    loaded.save(tmp_path / "again")  # the record of C's start survives a reload
    assert json.loads((tmp_path / "again" / "classifier" / "manifest.json").read_text())["weights"] == run["weights"]


def test_a_wrong_classifier_weights_file_stops_fit_with_one_line(ctsim, tmp_path, monkeypatch):
    import torch

    from synthaug_plugins.xpgan_projector import ctprep, training

    def never(*args, **kwargs):
        raise AssertionError("rendered or trained before the weights were checked")

    monkeypatch.setattr(ctprep.PairRenderer, "pair", never)
    monkeypatch.setattr(training.JointTrainer, "step", never)
    images, volumes = ctsim
    garbage, other = tmp_path / "garbage.pth", tmp_path / "other.pth"
    garbage.write_bytes(b"not a state dict")
    torch.save({"fc.weight": torch.zeros(2, 2)}, other)
    for path, message in [(garbage, f"{garbage}: not a readable torch state dict"),
                          (other, f"{other}: matches no tensor of densenet121"),
                          (tmp_path / "none.pth", f"classifier_weights {tmp_path / 'none.pth'}: no such weights file")]:
        synth = create("synthesizer", "xpgan", **{**XPGAN_FAST, "classifier": "densenet121"},
                       classifier_options={"width": 0.25}, classifier_weights=str(path))
        with pytest.raises(SynthaugError) as error:
            synth.fit(images, volumes)
        assert message in str(error.value) and "\n" not in str(error.value)


def test_c_trains_and_evaluates_at_the_stores_image_size(ctsim, tmp_path, monkeypatch):
    import torch

    from synthaug.pipeline.evaluate import evaluate
    from synthaug.pipeline.runs import load_model
    from synthaug.pipeline.store import write_store
    from synthaug_plugins.xpgan_projector.synthesizer import fit_to

    images, volumes = ctsim
    # 48-px radiographs: the decoder works at the next power of two, 64
    big = ImageSet(fit_to(images.images, (1, 48, 48)), images.labels, images.class_names, images.patient_ids)
    record = recording_trainer(monkeypatch)
    synth = create("synthesizer", "xpgan", **{**XPGAN_FAST, "poses_per_volume": 1})
    synth.fit(big, volumes)
    synth.save(tmp_path / "ckpt")
    assert synth.state["network"]["image_size"] == 64
    assert record["inputs"] == [(8, 1, 48, 48)] * 2  # each step: 4 real CXRs as they are + 4 G(CT) resized to 48
    run_dir = tmp_path / "ckpt" / "classifier"
    assert json.loads((run_dir / "manifest.json").read_text())["data"]["image_shape"] == [1, 48, 48]
    test = big.subset(np.array([6, 0, 1]))  # one image per class (covid, normal, viral)
    store = write_store(tmp_path / "s48.h5", {"train": big, "test": test})
    metrics = evaluate(run_dir, data=store)  # the store's 48-px test split, nothing resized
    assert metrics["n"] == 3 and sum(map(sum, metrics["confusion"])) == 3
    model, _ = load_model(run_dir)
    with torch.no_grad():
        predicted = model(torch.from_numpy(test.images)).argmax(1).numpy()
    assert metrics["accuracy"] == pytest.approx(float(np.mean(predicted == test.labels)))


def test_xpgan_volume_shape_option_takes_text_and_names_itself():
    synth = synthaug.get_registry().create("synthesizer", "xpgan", volume_shape="16x16x8")
    assert synth.config.volume_shape == (16, 16, 8)
    with pytest.raises(SynthaugError, match="xpgan: volume_shape must be X,Y,Z or XxYxZ in positive whole numbers"):
        synthaug.get_registry().create("synthesizer", "xpgan", volume_shape=[16, 16])


def test_cli_balance_drr_and_xpgan_fit_project(tmp_path):
    runner = CliRunner()
    mosmed = make_mosmed(tmp_path / "mosmed")
    common = ["--data", "ctsim", "--source-option", "preset=tiny", "--volumes", "mosmed", "--volumes-dir", str(mosmed),
              "--test-per-class", "1", "--strategy", "covid=12"]
    result = runner.invoke(main, ["--quiet", "balance", "--synth", "drr", *common, "--out", str(tmp_path / "d.h5")])
    assert result.exit_code == 0, result.output
    assert read_store(tmp_path / "d.h5").counts(synthetic=True)["covid"] == 11
    # a fitted xpgan through the Python API, then the projector from the command line
    from synthaug.pipeline.checkpoint import fit_synthesizer

    volumes = synthaug.load_volumes("mosmed", mosmed)
    images = synthaug.load_images("ctsim", preset="tiny")
    fit_synthesizer(images, "xpgan", tmp_path / "ckpt", test_per_class=1, volumes=volumes,
                    synth_options=dict(XPGAN_FAST, classifier="densenet121", classifier_options={"width": 0.25}),
                    strategy={"covid": 12})
    # the jointly trained C is a training run that `synthaug evaluate` measures on a balanced store
    synthaug.balance(images, "xpgan", test_per_class=1, volumes=volumes, synth_checkpoint=tmp_path / "ckpt",
                     strategy={"covid": 12}, out=tmp_path / "x.h5")
    result = runner.invoke(main, ["--quiet", "evaluate", "--run", str(tmp_path / "ckpt" / "classifier"),
                                  "--data", str(tmp_path / "x.h5")])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "ckpt" / "classifier" / "metrics-test-x.json").read_text())
    assert sum(map(sum, metrics["confusion"])) == 3  # one real test image per class
    study = next((mosmed / "studies" / "CT-2").iterdir())
    result = runner.invoke(main, ["project", "--projector", "xpgan", "--checkpoint", str(tmp_path / "ckpt"),
                                  "--volume", str(study), "--size", "32", "--out", str(tmp_path / "x.png")])
    assert result.exit_code == 0, result.output
    from PIL import Image

    assert Image.open(tmp_path / "x.png").size == (32, 32)
    result = runner.invoke(main, ["project", "--projector", "xpgan", "--volume", str(study),
                                  "--out", str(tmp_path / "y.png")])
    assert result.exit_code == 2 and "--checkpoint" in result.output


@pytest.mark.slow  # streaming-vs-memory equality: the end-to-end group
def test_xpgan_reads_a_split_too_large_for_memory_a_batch_at_a_time_with_the_same_result(ctsim, monkeypatch):
    import importlib

    from synthaug import LazyImages

    images, volumes = ctsim
    reads = []

    def read(positions):
        reads.append(len(positions))
        return images.images[positions]

    lazy = dataclasses.replace(images, images=LazyImages(read, len(images), images.image_shape))
    options = dict(XPGAN_FAST, max_steps=3)
    eager = synthaug.get_registry().create("synthesizer", "xpgan", **options)
    eager.fit(images, volumes)
    streamed = synthaug.get_registry().create("synthesizer", "xpgan", **options)
    module = importlib.import_module(type(streamed).__module__)  # the module the registry loaded
    monkeypatch.setattr(module, "fits_in_memory", lambda nbytes: False)
    streamed.fit(lazy, volumes)
    assert reads and max(reads) <= XPGAN_FAST["batch_size"]  # one batch of real CXRs at a time
    assert streamed.losses == eager.losses  # the same batches, the same numbers
    for a, b in zip(eager.generator.state_dict().values(), streamed.generator.state_dict().values()):
        assert torch.equal(a, b)


def test_an_xpgan_fit_keeps_its_state_in_the_work_dir_and_a_rerun_resumes_from_it(ctsim, tmp_path):
    """The kit keeps the state in the run's work directory after every epoch: a fit killed after
    epoch 1 and run again resumes there and ends with the uninterrupted fit's weights and losses (the
    last epoch shorter: max_steps=3 at 2 steps an epoch); a rerun of the finished fit trains no step; a
    fit of other options, another seed or other volumes refuses the state. (A kill mid-fit in another process, the
    store byte-identical: tests/test_faults.py, [xpgan-mid-fit].)"""
    from synthaug import RunContext
    from synthaug_plugins.xpgan_projector import training

    images, volumes = ctsim
    options = dict(XPGAN_FAST, batch_size=16, max_steps=3, epochs=2)  # 28 images: 2 steps an epoch, 2 + 1

    def fit(work=tmp_path / "work", seed=3, cts=volumes, **changes):
        synth = synthaug.get_registry().create("synthesizer", "xpgan", **{**options, **changes})
        synth.fit(images, cts, run=RunContext(seed=seed, work_dir=work, progress=False))
        return synth

    def same_weights(a, b) -> bool:
        return all(torch.equal(x, y) for m, n in ((a.generator, b.generator), (a.classifier, b.classifier))
                   for x, y in zip(m.state_dict().values(), n.state_dict().values()))

    uninterrupted = fit(work=None)
    assert len(uninterrupted.losses) == 3 and len(uninterrupted.history) == 2  # every step's, every epoch's
    epoch = type(uninterrupted).epoch

    def killed_at_epoch_2(self, training, index):
        if index == 1:
            raise KeyboardInterrupt  # the state of epoch 1 is written: a kill between epochs
        yield from epoch(self, training, index)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(type(uninterrupted), "epoch", killed_at_epoch_2)
        with pytest.raises(KeyboardInterrupt):
            fit()
    state = tmp_path / "work" / "train_state.pt"
    assert torch.load(state, weights_only=True)["epoch"] == 1  # nothing unpickled
    resumed = fit()  # the same seed, the same weights, resumed or not
    assert resumed.losses == uninterrupted.losses and resumed.history == uninterrupted.history
    assert same_weights(resumed, uninterrupted)
    with pytest.MonkeyPatch.context() as patch:  # finished: a rerun resumes at the end and trains nothing
        patch.setattr(training.JointTrainer, "step", lambda *a: pytest.fail("a step was trained again"))
        again = fit()
    assert again.losses == uninterrupted.losses and same_weights(again, uninterrupted)
    with pytest.raises(SynthaugError, match=r"train_state.pt: the state of another xpgan fit "
                                            r"\(option lambda_drr: 2.0 there, 1.0 in this run\)"):
        fit(lambda_drr=1.0)
    with pytest.raises(SynthaugError, match=r"the state of another xpgan fit \(seed: 3 there, 4 in this run\)"):
        fit(seed=4)
    with pytest.raises(SynthaugError, match=r"the state of another xpgan fit \(volumes: \["):
        fit(cts=volumes.subset(range(len(volumes) - 1)))
    fit(cache_mb=0)  # where or how fast it runs may differ
