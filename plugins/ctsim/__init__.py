"""ctsim: simulated chest radiographs (covid, normal, viral) from the real example CT.

- :mod:`.anatomy`: the reference anatomy (example CT on a working grid, with lung priors) and the
  per-patient variation (MONAI 3-D random elastic + anisotropic scaling, tissue densities).
- :mod:`.lesions`: COVID-19 and viral-pneumonia patterns inserted in HU inside the lung lobes.
- :mod:`.radiograph`: pose, source distance and photon count per image; the projection.
- :mod:`.generate`: the data set (class counts, twins, volumes), its config hash and its cache.
"""
