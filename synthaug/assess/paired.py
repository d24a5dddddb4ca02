"""Paired truth, where the data has it: SSIM and PSNR of a synthetic image against the real image it
should equal, and of the identity (the synthesizer's input) against the same truth.

- **In the store**: a synthetic image of class c made from a patient who also has a real image of
  class c in the store (a DRR or an XPGAN projection of a ctsim patient's CT against that patient's
  radiograph). When the synthetic image was made from a real image of another class (its
  ``source_index`` row), that image is the identity.
- **From a fitted synthesizer** (``--synth-checkpoint``): a synthesizer that offers ``measure(data)``
  translates the held-out test images' own inputs (pix2pix in paired mode on ctsim: G(lesion-free
  twin) against the real covid image, identity = the twin) and reports the same figures.

SSIM (Gaussian window 11, σ 1.5) and PSNR (data range 1) come from torchmetrics.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def ssim_psnr(images: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Mean SSIM and mean per-image PSNR (dB) of ``images`` against ``truth``, both in [0, 1]."""
    import torch
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

    x = torch.as_tensor(np.asarray(images, np.float32))
    y = torch.as_tensor(np.asarray(truth, np.float32))
    kernel = min(11, x.shape[-1] - (1 - x.shape[-1] % 2))
    ssim = structural_similarity_index_measure(x, y, data_range=1.0, kernel_size=kernel)
    psnr = peak_signal_noise_ratio(x, y, data_range=1.0, dim=(1, 2, 3), reduction="elementwise_mean")
    return {"ssim": float(ssim), "psnr": float(psnr)}


def truth_rows(dataset, synthetic: np.ndarray, label: int,
               sources: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(synthetic rows, truth rows): synthetic images whose patient has a real image of the same class
    in the same split, other than the image the synthetic one was made from (``sources``, aligned with
    ``synthetic``; -1 where none): a copy compared with its own source says nothing."""
    real = np.flatnonzero((np.asarray(dataset.synth) == "real") & (np.asarray(dataset.labels) == label))
    by_patient = {}
    for row in real:
        by_patient.setdefault(str(dataset.patient_ids[row]), int(row))
    made_from = np.full(len(synthetic), -1) if sources is None else sources
    pairs = [(int(s), by_patient[str(dataset.patient_ids[s])]) for s, source in zip(synthetic, made_from)
             if str(dataset.patient_ids[s]) in by_patient and by_patient[str(dataset.patient_ids[s])] != source]
    if not pairs:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    s_rows, t_rows = zip(*pairs)
    return np.asarray(s_rows), np.asarray(t_rows)


def in_store(dataset, synthetic: np.ndarray, label: int, source_rows: np.ndarray | None) -> dict[str, Any] | None:
    """Paired figures for the synthetic rows that have a truth in the store (None if none has)."""
    from synthaug.assess.features import batches

    s_rows, t_rows = truth_rows(dataset, synthetic, label, source_rows)
    if s_rows.size == 0:
        return None
    synth_images = np.concatenate([b.numpy() for b in batches(dataset, s_rows)])
    truth = np.concatenate([b.numpy() for b in batches(dataset, t_rows)])
    out: dict[str, Any] = {"n": int(s_rows.size), "compared": "synthetic image vs the same patient's real image",
                           "synthetic": ssim_psnr(synth_images, truth)}
    if source_rows is not None:
        sources = source_rows[np.searchsorted(synthetic, s_rows)]
        if np.all(sources >= 0) and np.all(np.asarray(dataset.labels)[sources] != label):
            identity = np.concatenate([b.numpy() for b in batches(dataset, sources)])
            out["identity"] = ssim_psnr(identity, truth)
    return out
