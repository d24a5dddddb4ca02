"""Example third-party synthaug plugin for a modality that is not X-ray: multi-sequence MRI slices."""
