"""XPGAN's jointly trained classifier C is not trained by a fresh classifier's recipe (issue #26): its
run says how, in its manifest (``recipe_differs``), for the experiment report's joint rows."""

from __future__ import annotations

import json

from synthaug.registry import create

from xpgan_helpers import ctsim, small_cnn  # noqa: F401 (fixtures)


def test_cs_run_states_how_its_recipe_differs_from_a_fresh_classifiers(ctsim, tmp_path):  # noqa: F811
    images, volumes = ctsim
    synth = create("synthesizer", "xpgan", preset="small", batch_size=4, max_steps=3, r1_gamma=0.0,
                   volume_shape=[16, 16, 8], classifier="xpgan-test-cnn")
    synth.fit(images, volumes)
    synth.save(tmp_path / "ckpt")
    run = json.loads((tmp_path / "ckpt" / "classifier" / "manifest.json").read_text())
    assert run["config"]["val_fraction"] == 0.0 and run["config"]["augment"] is False
    assert run["config"]["batch_size"] == 4 and run["best"] == {"epoch": 3, "score": None}  # the last step's C
    text = run["recipe_differs"]
    for part in ("not by `synthaug train`", "no validation split held out", "G's images of the CT volumes",
                 "4 real + 4 generated images per step", "3 joint steps", "Adam at lr 0.002 annealed to 0",
                 "from random weights", "keeps its final weights",
                 "holds out its recipe's val_fraction (default 10%)", "best validation macro-F1",
                 "batch size (default 32)"):
        assert part in text, part
    assert "\n" not in text
