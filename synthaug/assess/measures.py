"""Fidelity and diversity of a synthetic set against real images of the same class, on features.

- FID and KID come from torchmetrics (fed the features; ``GivenFeatures`` passes them through).
  FID's standard error is a bootstrap over both sets; KID's spread is torchmetrics' standard
  deviation over random subsets. FID is strongly biased upwards on small sets (by about D²/N for
  D-dimensional features and N images: hundreds for 256 features and 100 images), so FID∞ on the
  top principal components is reported beside it (:func:`fid_infinity`), and every table carries the
  same figures for real training images against the same real reference.
- Precision / recall / density / coverage follow Naeem et al. 2020 (k nearest neighbours among the
  real features set the radius of each real sample's ball); written here in a few lines of torch and
  checked against the authors' ``prdc`` package in the tests.
- FID and PRDC depend on the sizes of the two sets (1,126 synthetic images against 60 real ones bias
  precision up and recall down, and FID's bias is in 1/N of each set), so both are computed on
  ``SUBSAMPLES`` random subsamples of the larger set at the smaller set's size, and reported as the
  mean and the standard deviation over subsamples (:func:`subsample_draws`; sets of equal size are
  used whole, once).
- The classifier two-sample test (Lopez-Paz & Oquab 2017): a small network (scikit-learn's MLP on
  standardised features) learns to tell real from synthetic under stratified k-fold cross-validation
  **grouped by source** (scikit-learn's ``StratifiedGroupKFold``): images of one group (copies of one
  source image, a synthetic image and the patient it was made from, images of one patient) are never
  split between the folds a network trains on and the fold it scores, or copies in training would
  teach it the very images it is asked about. Every image is scored by a network that never saw it or
  its group; the scores are averaged over ``REPEATS`` random fold assignments, and the ROC-AUC (0.5:
  cannot be told apart, 1.0: always told apart) gets a bootstrap interval over groups. Its ROC-AUC is
  the one of :mod:`synthaug.pipeline.metrics`, the home of every classification measure.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from synthaug.pipeline.metrics import binary_roc_auc, pairwise_auc

#: Below this many images in either set a measure is not computed (it says why instead).
MIN_IMAGES = 4
#: Random equal-size subsamples FID and PRDC are averaged over when the two sets differ in size.
SUBSAMPLES = 10
#: Random fold assignments (and network initialisations) the two-sample test's scores are averaged over
#: on small sets: on 40 + 40 images one assignment's AUC varies with the assignment by about 0.05, five
#: average that down to about 0.03. Fewer on large sets (:func:`repeats_for`), where it varies less.
REPEATS = 5
#: Images whose training a repeat of the two-sample test may cost (5 repeats up to 400 images).
REPEAT_IMAGES = 2000


def repeats_for(images: int, repeats: int = REPEATS) -> int:
    """Fold assignments to average over for ``images`` images: ``repeats``, fewer past ``REPEAT_IMAGES``."""
    return max(1, min(repeats, REPEAT_IMAGES // max(images, 1)))


def _torch_features(x: np.ndarray):
    import torch

    return torch.as_tensor(np.asarray(x, np.float64))


def _given_features(dim: int):
    import torch

    class GivenFeatures(torch.nn.Module):
        """torchmetrics' "custom feature extractor" for features computed beforehand: the identity."""

        num_features = dim

        def forward(self, x):
            return x

    return GivenFeatures()


def fid(real: np.ndarray, fake: np.ndarray) -> float:
    """Fréchet distance of the Gaussians fitted to two feature sets (torchmetrics)."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    metric = FrechetInceptionDistance(feature=_given_features(real.shape[1]), reset_real_features=True)
    metric.update(_torch_features(real), real=True)
    metric.update(_torch_features(fake), real=False)
    return float(metric.compute())


def subsample_draws(n_real: int, n_fake: int, subsamples: int = SUBSAMPLES,
                    seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(real rows, synthetic rows)`` of ``subsamples`` random draws (without replacement) of the larger
    set at the smaller set's size, the smaller set whole; one draw of both sets whole when they are of
    equal size. The same draws for a seed, whichever measure asks."""
    n = min(n_real, n_fake)
    if n_real == n_fake:
        return [(np.arange(n_real), np.arange(n_fake))]
    rng = np.random.default_rng([seed, n_real, n_fake])

    def draw(size: int) -> np.ndarray:
        return np.sort(rng.choice(size, n, replace=False)) if size > n else np.arange(size)

    return [(draw(n_real), draw(n_fake)) for _ in range(subsamples)]


def _spread(values: list[float]) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def fid_with_error(real: np.ndarray, fake: np.ndarray, rounds: int = 50, seed: int = 0,
                   subsamples: int = SUBSAMPLES) -> dict[str, Any]:
    """FID at equal set sizes: the mean (``value``) and standard deviation (``std``) over
    :func:`subsample_draws`, and a bootstrap standard error (``se``: both sets resampled with
    replacement at the smaller set's size, ``rounds`` times); ``value_all``: FID of the sets whole."""
    rng = np.random.default_rng(seed)
    n = min(len(real), len(fake))
    values = [fid(real[r], fake[f]) for r, f in subsample_draws(len(real), len(fake), subsamples, seed)]
    boots = [fid(real[rng.integers(0, len(real), n)], fake[rng.integers(0, len(fake), n)]) for _ in range(rounds)]
    return {"value": float(np.mean(values)), "std": _spread(values),
            "se": float(np.std(boots, ddof=1)) if rounds > 1 else float("nan"),
            "size": int(n), "subsamples": len(values),
            "value_all": values[0] if len(real) == len(fake) else fid(real, fake)}


def principal_components(features: np.ndarray, dims: int) -> np.ndarray:
    """The top ``dims`` principal axes ``(D, dims)`` of ``features``."""
    centred = features - features.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return vt[:dims].T


def _extrapolated(real: np.ndarray, fake: np.ndarray, dims: int, points: int, repeats: int,
                  rng: np.random.Generator) -> float:
    n = min(len(real), len(fake))
    axes = principal_components(np.concatenate([real, fake]), dims)
    real_p, fake_p = real @ axes, fake @ axes
    sizes = np.unique(np.linspace(max(n // 2, dims + 2), n, points).astype(int))
    inverse, values = [], []
    for size in sizes:
        for _ in range(repeats):
            r = real_p[rng.choice(len(real_p), max(2, round(size * len(real_p) / n)), replace=False)]
            f = fake_p[rng.choice(len(fake_p), max(2, round(size * len(fake_p) / n)), replace=False)]
            inverse.append(1.0 / size)
            values.append(fid(r, f))
    slope, intercept = np.polyfit(inverse, values, 1)
    return float(intercept)


def fid_infinity(real: np.ndarray, fake: np.ndarray, *, dims: int = 32, points: int = 6, repeats: int = 3,
                 rounds: int = 20, seed: int = 0) -> dict[str, Any]:
    """FID freed of its small-set bias: FID∞ (Chong & Forsyth 2020) on the top principal components.

    FID grows like 1/N on N images: FID is computed on random subsets from half to all of the smaller
    set, regressed on 1/N, and the intercept (N → ∞) is the estimate. The extrapolation is only linear
    when the feature dimension is well below N, so the features are first projected on the top
    ``dims`` principal axes of both sets together (at most a third of the smaller set); a difference
    of means, what FID mostly sees, lies along those axes. The standard error is a bootstrap of the
    whole procedure over both sets (``rounds`` times).
    """
    rng = np.random.default_rng(seed)
    n = min(len(real), len(fake))
    dims = max(1, min(dims, real.shape[1], n // 3))
    value = _extrapolated(real, fake, dims, points, repeats, rng)
    boots = [_extrapolated(real[rng.integers(0, len(real), len(real))], fake[rng.integers(0, len(fake), len(fake))],
                           dims, points, repeats, rng) for _ in range(rounds)]
    return {"value": value, "se": float(np.std(boots, ddof=1)), "dims": int(dims)}


def kid(real: np.ndarray, fake: np.ndarray, subsets: int = 100, seed: int = 0) -> dict[str, float]:
    """KID (polynomial-kernel MMD², unbiased) as torchmetrics computes it: mean and std over subsets.

    Subsets hold half the smaller set (at most 1000 images, the KID paper's size): subsets as large
    as the set would all be the whole set, and their std would be 0 whatever the data.
    """
    import torch
    from torchmetrics.image.kid import KernelInceptionDistance

    size = min(1000, max(2, min(len(real), len(fake)) // 2))
    with warnings.catch_warnings():  # "will save all extracted features in buffer": they are a few thousand
        warnings.simplefilter("ignore", UserWarning)
        metric = KernelInceptionDistance(feature=_given_features(real.shape[1]), subsets=subsets, subset_size=size)
    metric.update(_torch_features(real), real=True)
    metric.update(_torch_features(fake), real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return {"value": float(mean), "std": float(std), "subset_size": size, "subsets": subsets}


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    import torch

    return torch.cdist(_torch_features(a), _torch_features(b)).numpy()


def kth_neighbour_radii(real: np.ndarray, k: int) -> np.ndarray:
    """Distance of each real sample to its k-th nearest other real sample."""
    d = _distances(real, real)
    return np.sort(d, axis=1)[:, k]  # column 0 is the sample itself


def prdc(real: np.ndarray, fake: np.ndarray, k: int = 5) -> dict[str, float]:
    """Precision, recall, density and coverage (Naeem et al. 2020) with ``k`` nearest neighbours."""
    k = min(k, len(real) - 1, len(fake) - 1)
    real_radii = kth_neighbour_radii(real, k)
    fake_radii = kth_neighbour_radii(fake, k)
    d = _distances(real, fake)  # (real, fake)
    inside_real = d < real_radii[:, None]  # strictly inside, as the authors' prdc package counts
    return {
        "precision": float(inside_real.any(axis=0).mean()),
        "recall": float((d < fake_radii[None, :]).any(axis=1).mean()),
        "density": float(inside_real.sum() / (k * len(fake))),
        "coverage": float((d.min(axis=1) < real_radii).mean()),
        "k": k,
    }


def prdc_subsampled(real: np.ndarray, fake: np.ndarray, k: int = 5, subsamples: int = SUBSAMPLES,
                    seed: int = 0) -> dict[str, Any]:
    """:func:`prdc` at equal set sizes: each figure's mean over :func:`subsample_draws` (flat, as
    :func:`prdc` gives them) and its standard deviation over them (``prdc_std``)."""
    runs = [prdc(real[r], fake[f], k) for r, f in subsample_draws(len(real), len(fake), subsamples, seed)]
    keys = ("precision", "recall", "density", "coverage")
    return {**{key: float(np.mean([run[key] for run in runs])) for key in keys}, "k": runs[0]["k"],
            "prdc_std": {key: _spread([run[key] for run in runs]) for key in keys}}


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC-AUC of the synthetic (1) against the real (0) images' scores."""
    return binary_roc_auc(labels == 1, scores)


def group_codes(groups: np.ndarray | None, n: int, prefix: str) -> np.ndarray:
    """``groups`` as strings, or one group per image (``prefix`` + its position) when None."""
    if groups is None:
        return np.asarray([f"\0{prefix}{i}" for i in range(n)], dtype=object)
    groups = np.asarray(groups).astype(str).astype(object)
    if groups.shape != (n,):
        raise ValueError(f"{groups.shape[0]} group keys for {n} images")
    return groups


def cluster_sampler(codes: np.ndarray) -> Callable[[np.random.Generator], np.ndarray]:
    """A draw of positions for a bootstrap over whole groups: as many groups as there are, drawn with
    replacement, each with all its members (one image per group: the ordinary bootstrap over images)."""
    _, inverse, counts = np.unique(codes, return_inverse=True, return_counts=True)
    if counts.size == 0 or counts.max() == 1:
        return lambda rng: rng.integers(0, codes.size, codes.size)
    order = np.argsort(inverse, kind="stable")
    starts = np.r_[0, np.cumsum(counts)[:-1]]

    def draw(rng: np.random.Generator) -> np.ndarray:
        picked = rng.integers(0, counts.size, counts.size)
        sizes = counts[picked]
        offsets = np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        return order[np.repeat(starts[picked], sizes) + offsets]

    return draw


def bootstrap_auc_interval(labels: np.ndarray, scores: np.ndarray, rounds: int = 1000, seed: int = 0,
                           level: float = 0.95, groups: np.ndarray | None = None) -> tuple[float, float]:
    """Percentile interval of the ROC-AUC over images resampled within each set (stratified); with
    ``groups``, over whole groups resampled within each set (a cluster bootstrap: copies of one image
    are one observation, not several)."""
    rng = np.random.default_rng(seed)
    codes = group_codes(groups, labels.size, "")
    pos, neg = scores[labels == 1], scores[labels == 0]
    draw_pos, draw_neg = cluster_sampler(codes[labels == 1]), cluster_sampler(codes[labels == 0])
    values = np.empty(rounds)
    for r in range(rounds):
        values[r] = pairwise_auc(pos[draw_pos(rng)], neg[draw_neg(rng)])
    tail = (1 - level) / 2
    return float(np.quantile(values, tail)), float(np.quantile(values, 1 - tail))


def grouped_folds(labels: np.ndarray, codes: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified folds that keep every group whole (``StratifiedGroupKFold``); empty folds dropped.
    Raises ValueError when some training part would lack one of the two sets."""
    from sklearn.model_selection import StratifiedGroupKFold

    _, numbers = np.unique(codes, return_inverse=True)
    with warnings.catch_warnings():  # "the least populated class has only n members": counted in images
        warnings.simplefilter("ignore", UserWarning)
        splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=seed)
        splits = [(a, b) for a, b in splitter.split(np.zeros(labels.size), labels, numbers) if b.size]
    if any(np.unique(labels[a]).size < 2 for a, _ in splits):
        raise ValueError("a training fold would hold images of one set only")
    return splits


def _skipped_test(reason: str, counts: dict[str, int]) -> dict[str, Any]:
    return {"auc": None, "low": None, "high": None, "skipped": reason, **counts}


def two_sample_test(real: np.ndarray, fake: np.ndarray, *, folds: int = 5, seed: int = 0,
                    real_groups: np.ndarray | None = None, fake_groups: np.ndarray | None = None,
                    repeats: int | None = None) -> dict[str, Any]:
    """Classifier two-sample test: ROC-AUC of real (0) vs synthetic (1) under cross-validation grouped
    by ``real_groups`` / ``fake_groups`` (keys per image; None: every image its own group; a key shared
    across the sets is one group), the scores averaged over ``repeats`` fold assignments (default
    :func:`repeats_for` the image count); its interval is a bootstrap over groups. Skipped (``auc``
    None) when a set has fewer than 2 groups."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import cross_val_predict
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.concatenate([real, fake]).astype(np.float64)
    y = np.concatenate([np.zeros(len(real), np.int64), np.ones(len(fake), np.int64)])
    codes = np.concatenate([group_codes(real_groups, len(real), "r"), group_codes(fake_groups, len(fake), "s")])
    sizes = {"real_groups": int(np.unique(codes[y == 0]).size), "synthetic_groups": int(np.unique(codes[y == 1]).size)}
    counts = {"real": int(len(real)), "synthetic": int(len(fake)), **sizes}
    folds = min(folds, *sizes.values())
    if folds < 2:
        return _skipped_test("needs at least 2 groups (sources or patients) in each set", counts)
    repeats = repeats_for(y.size) if repeats is None else repeats
    scores = np.zeros(y.size)
    for repeat in range(repeats):
        try:
            splits = grouped_folds(y, codes, folds, seed + repeat)
        except ValueError as error:
            return _skipped_test(f"no grouped folds: {error}", counts)
        network = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(64,), alpha=1e-2, max_iter=500,
                                                                early_stopping=False, random_state=seed + repeat))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            scores += cross_val_predict(network, x, y, cv=splits, method="predict_proba")[:, 1]
    scores /= repeats
    low, high = bootstrap_auc_interval(y, scores, seed=seed, groups=codes)
    return {"auc": auc(y, scores), "low": low, "high": high, "folds": folds, "repeats": repeats, **counts,
            "grouped": "folds and interval by source image or patient (StratifiedGroupKFold)",
            "network": "MLP(64) on standardised features, scikit-learn"}


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch, BLAS and OpenMP on one thread inside the block (restored after).

    The measures work on small matrices (a few thousand feature vectors, 256 wide): threads gain
    nothing there, and on a busy machine with two cores, threads waiting for each other made FID's
    bootstrap and the two-sample test 15 times slower (67 s instead of 4 s for 40 images a set).
    """
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(before)


def fidelity(real: np.ndarray, fake: np.ndarray, *, seed: int = 0, k: int = 5, fid_rounds: int = 50,
             subsamples: int = SUBSAMPLES, real_groups: np.ndarray | None = None,
             fake_groups: np.ndarray | None = None) -> dict[str, Any]:
    """Every feature-space measure of ``fake`` against ``real`` (None where a set is too small); the
    groups are the two-sample test's (:func:`two_sample_test`)."""
    if min(len(real), len(fake)) < MIN_IMAGES:
        return {"skipped": f"needs at least {MIN_IMAGES} images in each set (real {len(real)}, synthetic {len(fake)})"}
    larger = "real" if len(real) > len(fake) else "synthetic" if len(fake) > len(real) else None
    subsampled = {"size": int(min(len(real), len(fake))), "of": larger,
                  "subsamples": len(subsample_draws(len(real), len(fake), subsamples, seed))}
    with one_thread():
        return {"n_real": int(len(real)), "n_synthetic": int(len(fake)), "subsampled": subsampled,
                "fid": fid_with_error(real, fake, fid_rounds, seed, subsamples),
                "fid_inf": fid_infinity(real, fake, seed=seed),
                "kid": kid(real, fake, seed=seed), **prdc_subsampled(real, fake, k, subsamples, seed),
                "two_sample": two_sample_test(real, fake, seed=seed, real_groups=real_groups, fake_groups=fake_groups)}
