"""The COVID-19 Radiography Database (Kaggle), in both real layouts.

First release (2020, used by liang2021: 219 COVID-19, 1,341 normal, 1,345 viral pneumonia)::

    COVID-19 Radiography Database/
        COVID-19/COVID-19 (1).png ...      NORMAL/NORMAL (764).png ...
        Viral Pneumonia/Viral Pneumonia (1).png ...     (+ *.metadata.xlsx, README files: ignored)

Later releases (2021-)::

    COVID-19_Radiography_Dataset/
        COVID/images/COVID-1.png  COVID/masks/...       Normal/images/...     Lung_Opacity/images/...
        Viral Pneumonia/images/...                      (+ *.metadata.xlsx, README files: ignored)

``--data-dir`` may name the release folder itself or the folder that contains it. Classes map to
``covid``, ``normal``, ``viral``; ``lung_opacity`` (later release) only when asked for with
``classes=("lung_opacity",)``. The database has no patient ids: each file is its own patient.
"""

from __future__ import annotations

from pathlib import Path

from synthaug import DatasetSource, ImageSet, SourceOptions, SynthaugError
from synthaug_plugins.sources.images import list_images, load_files

FIRST_ROOT = "COVID-19 Radiography Database"
LATER_ROOT = "COVID-19_Radiography_Dataset"
FIRST_CLASSES = {"COVID-19": "covid", "NORMAL": "normal", "Viral Pneumonia": "viral"}
LATER_CLASSES = {"COVID": "covid", "Normal": "normal", "Viral Pneumonia": "viral", "Lung_Opacity": "lung_opacity"}
CLASS_ORDER = ("covid", "normal", "viral", "lung_opacity")


def _looks_like(folder: Path, classes: dict[str, str]) -> bool:
    return all((folder / name).is_dir() for name in classes if name != "Lung_Opacity")


def detect_layout(data_dir: Path) -> tuple[str, Path]:
    """``("first" | "later", release folder)``, or a SynthaugError saying what was found."""
    candidates = [data_dir, data_dir / FIRST_ROOT, data_dir / LATER_ROOT]
    for folder in candidates:
        if folder.is_dir() and _looks_like(folder, FIRST_CLASSES):
            return "first", folder
        if folder.is_dir() and _looks_like(folder, LATER_CLASSES):
            return "later", folder
    # Report the deepest folder that exists: the release folder if present, else the given one.
    where = next((c for c in candidates[1:] if c.is_dir()), data_dir)
    found = sorted(p.name for p in where.iterdir() if p.is_dir())[:8] if where.is_dir() else []
    raise SynthaugError(
        f"{where}: not a COVID-19 Radiography Database layout; found folders {found or 'none'}, expected "
        f"'{FIRST_ROOT}/{{COVID-19,NORMAL,Viral Pneumonia}}/*.png' (first release) or "
        f"'{LATER_ROOT}/{{COVID,Normal,Lung_Opacity,Viral Pneumonia}}/images/*.png' (later release)")


class KaggleSource(DatasetSource):
    name = "kaggle"
    provides = frozenset({"images"})

    def load_images(self, data_dir: Path | None, options: SourceOptions) -> ImageSet:
        assert data_dir is not None
        layout, root = detect_layout(data_dir)
        mapping = FIRST_CLASSES if layout == "first" else LATER_CLASSES
        wanted = {"covid", "normal", "viral", *(options.classes or ())}
        unknown = wanted - set(CLASS_ORDER)
        if unknown or (layout == "first" and "lung_opacity" in wanted):
            available = [c for c in CLASS_ORDER if c in mapping.values()]
            raise SynthaugError(f"class {sorted(unknown or {'lung_opacity'})[0]!r} is not in the {layout} release; "
                                f"it has {', '.join(available)}")
        files: list[tuple[Path, str]] = []
        for folder_name, cls in mapping.items():
            if cls not in wanted:
                continue
            folder = root / folder_name
            if layout == "later" and (folder / "images").is_dir():
                folder = folder / "images"  # masks/ beside it are not radiographs
            images = list_images(folder) if folder.is_dir() else []
            if not images:
                raise SynthaugError(f"{folder}: class folder holds no images (expected *.png)")
            files += [(p, cls) for p in images]
        class_names = [c for c in CLASS_ORDER if c in wanted]
        return load_files(files, class_names, options, {"source": "kaggle", "layout": layout, "root": str(root)})
