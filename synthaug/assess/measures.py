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
- The classifier two-sample test (Lopez-Paz & Oquab 2017): a small network (scikit-learn's MLP on
  standardised features) learns to tell real from synthetic under stratified k-fold cross-validation,
  so every image is scored by a network that never saw it; its ROC-AUC (0.5: cannot be told apart,
  1.0: always told apart) gets a bootstrap interval over images. Its ROC-AUC is the one of
  :mod:`synthaug.pipeline.metrics`, the home of every classification measure.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from synthaug.pipeline.metrics import binary_roc_auc, pairwise_auc

#: Below this many images in either set a measure is not computed (it says why instead).
MIN_IMAGES = 4


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


def fid_with_error(real: np.ndarray, fake: np.ndarray, rounds: int = 50, seed: int = 0) -> dict[str, float]:
    """FID and its bootstrap standard error (both sets resampled with replacement, ``rounds`` times)."""
    rng = np.random.default_rng(seed)
    value = fid(real, fake)
    boots = [fid(real[rng.integers(0, len(real), len(real))], fake[rng.integers(0, len(fake), len(fake))])
             for _ in range(rounds)]
    return {"value": value, "se": float(np.std(boots, ddof=1)) if rounds > 1 else float("nan")}


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


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC-AUC of the synthetic (1) against the real (0) images' scores."""
    return binary_roc_auc(labels == 1, scores)


def bootstrap_auc_interval(labels: np.ndarray, scores: np.ndarray, rounds: int = 1000, seed: int = 0,
                           level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the ROC-AUC over images resampled within each group (stratified)."""
    rng = np.random.default_rng(seed)
    pos, neg = scores[labels == 1], scores[labels == 0]
    values = np.empty(rounds)
    for r in range(rounds):
        values[r] = pairwise_auc(pos[rng.integers(0, pos.size, pos.size)], neg[rng.integers(0, neg.size, neg.size)])
    tail = (1 - level) / 2
    return float(np.quantile(values, tail)), float(np.quantile(values, 1 - tail))


def two_sample_test(real: np.ndarray, fake: np.ndarray, *, folds: int = 5, seed: int = 0) -> dict[str, Any]:
    """Classifier two-sample test: cross-validated ROC-AUC of real (0) vs synthetic (1) and its interval."""
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.concatenate([real, fake]).astype(np.float64)
    y = np.concatenate([np.zeros(len(real), np.int64), np.ones(len(fake), np.int64)])
    folds = max(2, min(folds, len(real), len(fake)))
    network = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(64,), alpha=1e-2, max_iter=500,
                                                            early_stopping=False, random_state=seed))
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        scores = cross_val_predict(network, x, y, cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
                                   method="predict_proba")[:, 1]
    low, high = bootstrap_auc_interval(y, scores, seed=seed)
    return {"auc": auc(y, scores), "low": low, "high": high, "folds": folds, "real": int(len(real)),
            "synthetic": int(len(fake)), "network": "MLP(64) on standardised features, scikit-learn"}


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


def fidelity(real: np.ndarray, fake: np.ndarray, *, seed: int = 0, k: int = 5, fid_rounds: int = 50) -> dict[str, Any]:
    """Every feature-space measure of ``fake`` against ``real`` (None where a set is too small)."""
    if min(len(real), len(fake)) < MIN_IMAGES:
        return {"skipped": f"needs at least {MIN_IMAGES} images in each set (real {len(real)}, synthetic {len(fake)})"}
    with one_thread():
        return {"n_real": int(len(real)), "n_synthetic": int(len(fake)),
                "fid": fid_with_error(real, fake, fid_rounds, seed), "fid_inf": fid_infinity(real, fake, seed=seed),
                "kid": kid(real, fake, seed=seed),
                **prdc(real, fake, k), "two_sample": two_sample_test(real, fake, seed=seed)}
