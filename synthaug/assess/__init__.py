"""How good, how diverse and how copied are a store's synthetic images (``synthaug quality``).

``features`` (the network images are measured in) -> ``measures`` (FID, KID, precision / recall /
density / coverage, the classifier two-sample test) and ``memorise`` (nearest real training image)
and ``paired`` (ground truth where the data has it) -> ``report`` (quality.json, quality.md, figures)
-> ``run`` (:func:`synthaug.quality`, what the command calls). See docs/quality.md.
"""
