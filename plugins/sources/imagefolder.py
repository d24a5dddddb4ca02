"""``imagefolder``: one sub-folder of images per class (class names = folder names, sorted)."""

from __future__ import annotations

from pathlib import Path

from synthaug import DatasetSource, ImageSet, SourceOptions, SynthaugError
from synthaug_plugins.sources.images import list_images, load_files


class ImageFolderSource(DatasetSource):
    name = "imagefolder"
    provides = frozenset({"images"})

    def load_images(self, data_dir: Path | None, options: SourceOptions) -> ImageSet:
        assert data_dir is not None
        folders = sorted(p for p in data_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
        if len(folders) < 2:
            raise SynthaugError(f"{data_dir}: expected one sub-folder of images per class (at least 2); "
                                f"found {len(folders)}")
        files: list[tuple[Path, str]] = []
        for folder in folders:
            images = list_images(folder)
            if not images:
                raise SynthaugError(f"{folder}: class folder holds no images (expected *.png, *.jpg, ...)")
            files += [(p, folder.name) for p in images]
        return load_files(files, [f.name for f in folders], options, {"source": "imagefolder", "root": str(data_dir)})
