"""Nothing is executed from files: every loader of weights, checkpoints, run directories and saved
feature networks refuses a file whose unpickling would run code, without running it.

The crafted file is a ``torch.save`` of an object whose ``__reduce__`` calls ``os.system`` to create a
marker file: loading it with plain ``pickle`` (or ``torch.load(weights_only=False)``) creates the
marker. Every loader must raise a one-line :class:`SynthaugError` naming the file, and the marker must
not exist afterwards.
"""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


class _RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture
def evil(tmp_path):
    """(write(path): a crafted checkpoint at path, marker path)."""
    import torch

    marker = tmp_path / "code-ran"

    def write(path: Path, wrap=lambda payload: {"model": payload}) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(wrap(_RunsCode(marker)), path)
        return path

    return write, marker


def test_the_crafted_file_does_run_code_when_unpickled(evil, tmp_path):
    """The control: without weights_only the marker appears, so its absence below means something."""
    import torch

    write, marker = evil
    path = write(tmp_path / "control.pt")
    torch.load(path, weights_only=False)
    assert marker.exists()


def _pix2pix_dir(root: Path, write) -> Path:
    root.mkdir()
    (root / "synthesizer.json").write_text(json.dumps({"name": "pix2pix", "config": {"ngf": 8}, "targets": ["covid"],
                                                       "image_shape": [1, 32, 32], "hashes": {"covid": "0"}}))
    write(root / "generator_covid.pt", wrap=lambda p: {"weight": p})
    return root


def _acgan_dir(root: Path, write) -> Path:
    root.mkdir()
    (root / "synthesizer.json").write_text(json.dumps({"name": "acgan", "config": {"ngf": 8},
                                                       "weights": {"generator": "0"}, "image_shape": [1, 32, 32],
                                                       "class_names": ["covid", "normal"]}))
    write(root / "generator.pt", wrap=lambda p: {"weight": p})
    return root


def _run_dir(root: Path, write) -> Path:
    from synthaug.pipeline.runs import KIND, write_manifest

    write_manifest(root, {"kind": KIND, "status": "finished",
                          "config": {"classifier": "resnet50", "classifier_options": {"width": 0.25}},
                          "data": {"image_shape": [1, 32, 32], "class_names": ["covid", "normal"]}})
    from synthaug.pipeline.runs import RunPaths

    write(RunPaths(root).best)
    return root


def _features_dir(root: Path, write) -> Path:
    root.mkdir()
    (root / "features.json").write_text(json.dumps({"network": "densenet121", "options": {"width": 0.25},
                                                    "in_channels": 1, "num_classes": 2, "size": 32}))
    write(root / "weights.pt", wrap=lambda p: {"weight": p})
    return root


def _load(kind: str, root: Path, write):
    """Build the artefact ``kind`` under ``root`` with the crafted file in it, then load it as synthaug does."""
    from synthaug.registry import get_registry

    if kind == "weights (--weights, --features PATH)":
        from synthaug.kit.transfer import read_state_dict
        return read_state_dict(write(root / "r50.pth"))
    if kind == "training state (resume: last.pt)":
        from synthaug.pipeline.runs import load_checkpoint
        return load_checkpoint(write(root / "last.pt"))
    if kind == "run directory (evaluate: best.pt)":
        from synthaug.pipeline.runs import load_model
        return load_model(_run_dir(root / "run", write))
    if kind == "pix2pix --synth-checkpoint":
        return get_registry().entry("synthesizer", "pix2pix").resolve().load(_pix2pix_dir(root / "p2p", write))
    if kind == "acgan --synth-checkpoint":
        return get_registry().entry("synthesizer", "acgan").resolve().load(_acgan_dir(root / "acgan", write))
    if kind == "quality --features DIR":
        from synthaug.assess.features import load_saved
        return load_saved(_features_dir(root / "features", write))
    if kind == "xpgan --synth-checkpoint":
        return get_registry().entry("synthesizer", "xpgan").resolve().load(_xpgan_dir(root / "xpgan", write))
    if kind == "pix2pix resume state (--work-dir)":
        import numpy as np

        from synthaug import ImageSet, RunContext

        (root / "work").mkdir()
        write(root / "work" / "train_state_covid.pt")
        data = ImageSet(np.zeros((4, 1, 32, 32), np.float32), [0, 0, 1, 1], ("covid", "normal"), list("abcd"))
        synth = get_registry().create("synthesizer", "pix2pix")
        return synth.check(data, {"covid": 1}, run=RunContext(work_dir=root / "work"))  # reads the state first
    raise AssertionError(kind)


def _xpgan_dir(root: Path, write) -> Path:
    from dataclasses import asdict

    from synthaug.registry import get_registry

    root.mkdir()
    cls = get_registry().entry("synthesizer", "xpgan").resolve()
    network = cls.Config(preset="small").network_config((1, 32, 32), "cpu")
    (root / "synthesizer.json").write_text(json.dumps({"name": "xpgan", "config": {"preset": "small"},
                                                       "weights": {"generator": "0"},
                                                       "state": {"network": asdict(network)}}))
    write(root / "generator.pt", wrap=lambda p: {"weight": p})
    return root


@pytest.mark.parametrize("kind", ["weights (--weights, --features PATH)", "training state (resume: last.pt)",
                                  "run directory (evaluate: best.pt)", "pix2pix --synth-checkpoint",
                                  "acgan --synth-checkpoint", "quality --features DIR", "xpgan --synth-checkpoint",
                                  "pix2pix resume state (--work-dir)"])
def test_every_loader_refuses_a_file_that_would_run_code(kind, evil, tmp_path):
    from synthaug.errors import SynthaugError

    write, marker = evil
    with pytest.raises(SynthaugError) as caught:
        _load(kind, tmp_path, write)
    message = str(caught.value)
    assert "refused: it holds pickled Python objects" in message, message
    assert "\n" not in message and (".pt" in message or ".pth" in message), message  # one line, naming the file
    assert not marker.exists(), f"{kind}: loading ran code from the file"


def _torch_load_calls(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load" \
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch":
            yield node


def test_every_torch_load_in_the_code_passes_weights_only_true():
    calls = []
    for folder in ("synthaug", "plugins", "examples"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for call in _torch_load_calls(path):
                flag = next((k.value for k in call.keywords if k.arg == "weights_only"), None)
                safe = isinstance(flag, ast.Constant) and flag.value is True
                calls.append((f"{path.relative_to(ROOT)}:{call.lineno}", safe))
    assert calls, "no torch.load found: the scan is broken"
    assert [where for where, ok in calls if not ok] == []
