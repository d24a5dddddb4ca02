"""Data model (ImageSet, VolumeSet), the HDF5 store, splits and dataset sources."""
