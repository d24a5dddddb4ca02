"""The bundled dataset sources: kaggle, imagefolder, h5, nifti, mosmed, example-ct."""
