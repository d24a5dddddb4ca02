"""xpgan and drr: the joint objective on ctsim at 32 px, checks, generation, provenance, save/load,
the projector, and balance end to end (ctsim and a MosMed-layout fixture)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import synthaug
from synthaug.contract.types import ImageSet, Volume, VolumeSet
from synthaug.errors import SynthaugError
from synthaug.registry import create
from synthaug_plugins.xpgan_projector import ctprep

from xpgan_helpers import ctsim, phantom_hu, register_small_classifier, small_cnn  # noqa: F401 (fixtures)

# small networks on a 16x16x8 encoder grid (32 px images): the 3-D convolutions dominate CPU time
# C: the small test CNN (densenet121 costs ~10x more CPU per step; the CLI test in
# test_xpgan_balance.py trains and evaluates xpgan with densenet121)
# poses: the default, pose 0 (the identity) only (quan2021 trains without augmentation)
SMALL = dict(preset="small", batch_size=4, volume_shape=[16, 16, 8], classifier="xpgan-test-cnn")


@pytest.fixture(scope="module")
def fitted(ctsim, tmp_path_factory):
    images, volumes = ctsim
    register_small_classifier()
    synth = create("synthesizer", "xpgan", max_steps=2, r1_gamma=0.0, **SMALL)
    synth.fit(images, volumes)
    directory = tmp_path_factory.mktemp("xpgan-ckpt")
    synth.save(directory)
    return synth, directory


# ---- the objective -------------------------------------------------------------------------------
def test_joint_steps_on_ctsim_keep_losses_finite_and_reduce_drr_loss_on_held_out_patients(ctsim):
    from synthaug_plugins.xpgan_projector.training import BatchSource, JointTrainer, ObjectiveConfig

    images, volumes = ctsim
    synth = create("synthesizer", "xpgan", **SMALL)
    net = synth.config.network_config(images.image_shape)
    torch.manual_seed(0)
    # Split ctsim's patients: every 4th (7 of 28) is held out; the joint steps see neither their CTs nor
    # their radiographs, and R(G) is measured on their CTs.
    held = np.arange(0, len(volumes), 4)
    fit_volumes = np.setdiff1d(np.arange(len(volumes)), held)
    held_patients = set(volumes.patient_ids[held])
    fit_images = np.flatnonzero(~np.isin(images.patient_ids, list(held_patients)))
    assert len(held) == 7 and len(fit_volumes) == 21 and len(fit_images) == 21
    assert not held_patients & set(volumes.patient_ids[fit_volumes])
    assert not held_patients & set(images.patient_ids[fit_images])
    render = dict(image_size=32, encoder_shape=net.volume_shape, hu_window=(-1000, 1000), view="PA", sdd=1020, sid=850)
    renderer = ctprep.PairRenderer(volumes, create("projector", "siddon"), **render)
    mapping = ctprep.resolve_label_map(volumes.class_names, images.class_names, None, "test")
    labels = ctprep.image_labels_of(volumes, mapping)
    assert labels.tolist() == volumes.labels.tolist()  # ctsim's classes map to themselves
    identity = [[(0.0,) * 6] for _ in fit_volumes]
    source = BatchSource(images.images[fit_images], images.labels[fit_images], renderer, fit_volumes,
                         labels[fit_volumes], identity, 4, np.random.default_rng(0), torch.device("cpu"))
    steps = 8
    small_cnn = create("classifier", register_small_classifier()).build(1, 3)
    trainer = JointTrainer(net, small_cnn, ObjectiveConfig(r1_interval=4), steps,
                           torch.device("cpu"))
    held_renderer = ctprep.PairRenderer(volumes, create("projector", "siddon"), cache_mb=0, **render)
    held_out = [held_renderer.pair(int(i), (0.0,) * 6) for i in held]
    ct = torch.from_numpy(np.stack([p[0] for p in held_out]))
    drr = torch.from_numpy(np.stack([p[1] for p in held_out]))

    def drr_loss() -> float:
        with torch.no_grad():
            fake = (trainer.generator(ct, torch.Generator().manual_seed(0)) + 1) / 2
        return float((fake - drr).abs().mean())

    before = drr_loss()
    history = [trainer.step(source.next()) for _ in range(steps)]
    after = drr_loss()
    trained_on = {index for index, _ in source.renderer.cache}  # every (volume, pose) the steps rendered
    assert trained_on and trained_on <= set(fit_volumes.tolist()) and not trained_on & set(held.tolist())
    for logs in history:
        for key in ("loss_c", "loss_g_adv", "loss_drr", "loss_d"):  # L(C), V for G and D, R(G)
            assert math.isfinite(logs[key]), (key, logs)
    assert [i for i, logs in enumerate(history) if "r1" in logs] == [0, 4]  # lazy R1 every r1_interval steps
    assert after < 0.85 * before, (before, after)
    assert history[-1]["loss_total"] == pytest.approx(
        history[-1]["loss_c"] + history[-1]["loss_g_adv"] + 2.0 * history[-1]["loss_drr"], rel=1e-5)
    # cosine annealing brought every learning rate to (about) zero at the end of the run
    assert trainer.opt_g.param_groups[0]["lr"] < 1e-6


def test_classifier_input_is_resized_differentiably_with_antialiasing():
    from synthaug_plugins.xpgan_projector.training import resize_for_classifier

    fake = torch.rand(2, 1, 64, 64, requires_grad=True)
    resized = resize_for_classifier(fake, (48, 40))
    assert resized.shape == (2, 1, 48, 40)
    expected = torch.nn.functional.interpolate(fake.detach(), size=(48, 40), mode="bilinear", align_corners=False,
                                               antialias=True)
    assert torch.equal(resized.detach(), expected)
    resized.square().sum().backward()  # L(C) reaches G through the resize
    assert fake.grad is not None and (fake.grad != 0).float().mean() > 0.99
    same = torch.rand(1, 1, 32, 32)
    assert resize_for_classifier(same, (32, 32)) is same and resize_for_classifier(same, None) is same


def test_training_poses_default_to_the_identity_and_jitter_is_an_option(ctsim, monkeypatch):
    images, volumes = ctsim
    assert create("synthesizer", "xpgan").config.poses_per_volume == 1
    seen = []
    render = ctprep.PairRenderer.pair

    def recording(self, index, pose):
        seen.append(tuple(float(p) for p in pose))
        return render(self, index, pose)

    monkeypatch.setattr(ctprep.PairRenderer, "pair", recording)
    create("synthesizer", "xpgan", max_steps=1, r1_gamma=0.0, **SMALL).fit(images, volumes)
    assert len(seen) == 4 and set(seen) == {(0.0,) * 6}  # one batch of 4 CTs, all in the identity pose
    seen.clear()
    create("synthesizer", "xpgan", max_steps=2, r1_gamma=0.0, **{**SMALL, "poses_per_volume": 8}).fit(images, volumes)
    jittered = [pose for pose in seen if pose != (0.0,) * 6]
    assert jittered, seen  # 8 CTs drawn, each from the identity and 7 fixed random poses
    assert all(abs(v) <= 5.0 for pose in jittered for v in pose[:3])  # max_rotation, degrees
    assert all(abs(v) <= 10.0 for pose in jittered for v in pose[3:])  # max_translation, mm
    with pytest.raises(SynthaugError, match="xpgan: poses_per_volume must be >= 1 .*; got 0"):
        create("synthesizer", "xpgan", poses_per_volume=0)


def test_fit_records_history_and_state(fitted, ctsim):
    synth, _ = fitted
    assert len(synth.losses) == 2 and set(synth.losses[0]) >= {"loss_c", "loss_g_adv", "loss_drr", "loss_d"}
    assert [h["epoch"] for h in synth.history] == [1]  # the kit's: the two steps' mean losses
    assert synth.history[0]["loss_drr"] == pytest.approx(np.mean([s["loss_drr"] for s in synth.losses]))
    assert synth.state["label_map"] == {"covid": "covid", "normal": "normal", "viral": "viral"}
    assert tuple(synth.state["network"]["volume_shape"]) == (16, 16, 8)
    assert synth.state["network"]["image_size"] == 32


# ---- generation, provenance, persistence ----------------------------------------------------------
def test_generate_fills_a_class_from_its_volumes(fitted, ctsim):
    synth, _ = fitted
    images, volumes = ctsim
    out = synth.generate(images, "covid", 5, seed=3, volumes=volumes)
    covid_volumes = set(np.flatnonzero(volumes.labels == volumes.class_names.index("covid")))
    assert out.images.shape == (5, 1, 32, 32) and out.images.dtype == np.float32
    assert 0 <= out.images.min() and out.images.max() <= 1
    assert set(out.labels) == {images.class_index("covid")}
    assert set(out.source_index) == covid_volumes  # both covid CTs used before either repeats
    assert list(out.origin) == [volumes.origins[i] for i in out.source_index]
    assert list(out.patient_ids) == [volumes.patient_ids[i] for i in out.source_index]
    # pose and noise variety: the same volume twice gives two different images
    first = out.source_index[0]
    twins = np.flatnonzero(out.source_index == first)
    assert np.abs(out.images[twins[0]] - out.images[twins[1]]).mean() > 1e-4
    again = synth.generate(images, "covid", 5, seed=3, volumes=volumes)
    assert np.array_equal(out.images, again.images)


def test_save_load_round_trip_gives_same_images(fitted, ctsim):
    synth, directory = fitted
    images, volumes = ctsim
    loaded = type(synth).load(directory)
    a = synth.generate(images, "viral", 3, seed=1, volumes=volumes)
    b = loaded.generate(images, "viral", 3, seed=1, volumes=volumes)
    np.testing.assert_allclose(a.images, b.images, atol=1e-6)
    assert len(json.loads((directory / "history.json").read_text())) == 2
    run = json.loads((directory / "classifier" / "manifest.json").read_text())  # C as a `synthaug train` run
    assert run["config"]["classifier"] == "xpgan-test-cnn"
    assert run["data"]["class_names"] == ["covid", "normal", "viral"]
    assert run["data"]["image_shape"] == [1, 32, 32]
    assert run["weights"] is None and run["config"]["classifier_weights"] is None  # C started from random init
    from synthaug.pipeline.runs import load_model

    model, _ = load_model(directory / "classifier")
    for name, value in synth.classifier.state_dict().items():
        assert torch.equal(model.state_dict()[name].cpu(), value.cpu()), name
    with torch.no_grad():
        logits = loaded.classifier.eval()(torch.from_numpy(images.images[:4]))
    assert logits.shape == (4, 3)


def test_generate_before_fit_and_bad_checkpoint(tmp_path, ctsim):
    images, volumes = ctsim
    with pytest.raises(SynthaugError, match="not fitted"):
        create("synthesizer", "xpgan").generate(images, "covid", 1, seed=0, volumes=volumes)
    with pytest.raises(SynthaugError, match="not a synthesizer checkpoint"):
        synthaug.get_registry().entry("synthesizer", "xpgan").resolve().load(tmp_path)


def test_projector_renders_with_the_trained_generator(fitted, ctsim):
    synth, directory = fitted
    _, volumes = ctsim
    from synthaug.contract.types import Geometry

    projector = create("projector", "xpgan", checkpoint=str(directory))
    image = projector.project(volumes[0], Geometry(height=48, width=40))
    assert image.shape == (1, 48, 40) and image.dtype == np.float32
    assert 0 <= image.min() and image.max() <= 1
    native = projector.project(volumes[0])
    expected = synth.render(ctprep.encoder_input(volumes[0], (16, 16, 8), (-1000, 1000))[None], 0)[0]
    np.testing.assert_allclose(native, expected, atol=1e-5)
    with pytest.raises(SynthaugError, match="checkpoint"):
        create("projector", "xpgan")


# ---- checks before training ----------------------------------------------------------------------
def _volumes(classes, labels, shape=(32, 32, 16)):
    items = [Volume(phantom_hu(shape, lesion=bool(label), seed=i), (10.0, 10.0, 20.0))
             for i, label in enumerate(labels)]
    return VolumeSet(items, labels, classes, [f"p{i}" for i in range(len(labels))],
                     [f"vol{i}.nii.gz" for i in range(len(labels))])


def _images(n_per_class=(3, 6), size=32):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(len(n_per_class)), n_per_class)
    return ImageSet(rng.random((len(labels), 1, size, size), dtype=np.float32), labels,
                    ("covid", "normal")[:len(n_per_class)], [f"x{i}" for i in range(len(labels))])


def test_check_refuses_unlabeled_volumes():
    volumes = _volumes(("unlabeled",), [0, 0])
    with pytest.raises(SynthaugError, match="carry no class labels"):
        create("synthesizer", "xpgan", **SMALL).check(_images(), {"covid": 3}, volumes)


def test_check_refuses_a_deficit_class_without_volumes():
    volumes = _volumes(("normal", "covid"), [0, 0, 0])  # no covid CT
    with pytest.raises(SynthaugError, match="class 'covid' needs 3 images but no CT volume maps to it"):
        create("synthesizer", "xpgan", **SMALL).check(_images(), {"covid": 3, "normal": 0}, volumes)
    with pytest.raises(SynthaugError, match="no CT volume maps to it"):  # a label map sending covid elsewhere
        create("synthesizer", "drr", label_map={"covid": "normal", "normal": "normal"}).check(
            _images(), {"covid": 3}, _volumes(("normal", "covid"), [0, 1]))


@pytest.mark.parametrize("label_map,message", [
    ({"CT-9": "covid"}, "names CT class 'CT-9'"),
    ({"covid": "pneumonia"}, "sends 'covid' to 'pneumonia'"),
])
def test_check_refuses_bad_label_maps(label_map, message):
    with pytest.raises(SynthaugError, match=message):
        create("synthesizer", "drr", label_map=label_map).check(_images(), {"covid": 3},
                                                                _volumes(("normal", "covid"), [0, 1]))


def test_check_refuses_volumes_too_small_for_the_encoder():
    volumes = _volumes(("normal", "covid"), [0, 1], shape=(32, 32, 3))
    with pytest.raises(SynthaugError, match=r"vol0.nii.gz has shape \(32, 32, 3\).*needs at least \(8, 8, 4\)"):
        create("synthesizer", "xpgan", preset="small").check(_images(), {"covid": 3}, volumes)


def test_check_refuses_missing_volumes():
    with pytest.raises(SynthaugError, match="needs labeled CT volumes"):
        create("synthesizer", "xpgan").check(_images(), {"covid": 3}, None)


def test_default_label_map_mosmed_grades_and_names():
    mapping = ctprep.resolve_label_map(("CT-0", "CT-1", "CT-2", "CT-3", "CT-4"), ("covid", "normal"), None, "t")
    assert mapping == {0: 1, 1: 0, 2: 0, 3: 0, 4: 0}
    assert ctprep.resolve_label_map(("CT-0", "CT-23"), ("covid", "normal"), None, "t") == {0: 1, 1: 0}
    assert ctprep.resolve_label_map(("normal", "covid"), ("covid", "normal", "viral"), None, "t") == {0: 1, 1: 0}
    assert ctprep.resolve_label_map(("COVID", "other"), ("covid", "normal"), None, "t") == {0: 0}


# ---- drr baseline ----------------------------------------------------------------------------------
def test_drr_without_pose_is_the_siddon_radiograph_of_the_volume(ctsim):
    images, volumes = ctsim
    synth = create("synthesizer", "drr", max_rotation=0.0, max_translation=0.0)
    out = synth.generate(images, "covid", 3, seed=0, volumes=volumes)
    assert out.images.shape == (3, 1, 32, 32)
    first = int(out.source_index[0])
    volume = volumes[first]
    geometry = ctprep.drr_geometry(volume, 32, view="PA", sdd=1020.0, sid=850.0)
    expected = create("projector", "siddon").project(volume, geometry, mode="radiograph")
    np.testing.assert_allclose(out.images[0], expected, atol=1e-6)
    assert out.origin[0] == volumes.origins[first]
    posed = create("synthesizer", "drr").generate(images, "covid", 3, seed=0, volumes=volumes)
    assert np.abs(posed.images[0] - out.images[0]).mean() > 1e-3  # a random pose moves the anatomy


def test_pose_volume_rotates_about_the_centre():
    hu = np.full((21, 21, 11), -1000.0, np.float32)
    hu[15, 10, 5] = 1000.0  # a point 5 voxels (10 mm) right of the centre
    volume = Volume(hu, (2.0, 2.0, 4.0))
    turned = ctprep.pose_volume(volume, (0, 0, 90, 0, 0, 0)).hu
    assert np.unravel_index(np.argmax(turned), turned.shape) == (10, 15, 5)  # R -> A for +90 deg about z
    shifted = ctprep.pose_volume(volume, (0, 0, 0, 0, 0, 8.0)).hu
    assert np.unravel_index(np.argmax(shifted), shifted.shape) == (15, 10, 7)  # +8 mm = 2 voxels of 4 mm
