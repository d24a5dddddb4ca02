"""MosMedData (Morozov et al. 2020, quan2021's CT source) in its two published layouts.

- The release (``COVID19_1110``): ``studies/CT-0 .. CT-4/study_XXXX.nii.gz``, with ``masks/`` and
  ``dataset_registry.xlsx`` beside ``studies/`` (ignored).
- The subset of the Keras 3D-classification tutorial: ``CT-0/`` and ``CT-23/`` (CT-2 and CT-3 merged).

CT-0 holds studies without COVID-19 findings and CT-1..CT-4 the positive ones graded by lung
involvement (<25 %, 25-50 %, 50-75 %, >75 %). Classes are named to meet the radiograph classes:
CT-0 -> ``normal``, CT-1..4 -> ``covid``; the grade is kept in ``VolumeSet.meta["severity"]`` (0..4;
a merged folder such as CT-23 gives its lowest grade, 2) and the folder name in ``meta["grade_dir"]``.
"""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path

import numpy as np

from synthaug import DatasetSource, SourceOptions, SynthaugError, VolumeSet
from synthaug_plugins.sources.nifti import VolumeSourceConfig, is_nifti, load_volume, nifti_stem, target_shape

CLASS_NAMES = ("normal", "covid")
GRADE_DIR = re.compile(r"^CT-([0-4]+)$")  # CT-0 .. CT-4, or a merged folder such as CT-23


def studies_dir(data_dir: Path) -> Path:
    """The folder holding CT-0..CT-4: ``data_dir/studies`` or ``data_dir`` itself."""
    for candidate in (data_dir / "studies", data_dir):
        if candidate.is_dir() and any(GRADE_DIR.match(p.name) and p.is_dir() for p in candidate.iterdir()):
            return candidate
    raise SynthaugError(f"{data_dir}: not a MosMedData folder; expected studies/CT-0 .. studies/CT-4 "
                        f"(or CT-0, CT-23) holding study_XXXX.nii.gz")


class MosMedSource(DatasetSource):
    name = "mosmed"
    Config = VolumeSourceConfig
    provides = frozenset({"volumes"})

    def load_volumes(self, data_dir: Path | None, options: SourceOptions) -> VolumeSet:
        assert data_dir is not None
        root = studies_dir(data_dir)
        shape = target_shape(options)
        files, severities, grade_dirs = [], [], []
        for grade_dir in sorted(p for p in root.iterdir() if p.is_dir() and GRADE_DIR.match(p.name)):
            grade = min(int(digit) for digit in GRADE_DIR.match(grade_dir.name).group(1))
            for path in sorted(p for p in grade_dir.iterdir() if p.is_file() and is_nifti(p)):
                files.append(path)
                severities.append(grade)
                grade_dirs.append(grade_dir.name)
        if not files:
            raise SynthaugError(f"{root}: the CT-0..CT-4 folders hold no .nii/.nii.gz studies")
        labels = [0 if grade == 0 else 1 for grade in severities]
        loaders = [partial(load_volume, f, shape) for f in files]
        return VolumeSet(loaders, labels, CLASS_NAMES, [nifti_stem(f) for f in files], [str(f) for f in files],
                         meta={"severity": np.asarray(severities, dtype=np.int64),
                               "grade_dir": np.asarray(grade_dirs, dtype=object)})
