"""Image agreement measures for translated images against their true counterparts (images in [0, 1])."""

from __future__ import annotations

import numpy as np
import torch


def l1(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().mean())


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB for data range 1, averaged over images."""
    mse = ((a - b) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return float((10 * torch.log10(1.0 / mse)).mean())


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 11) -> float:
    """Mean SSIM (Wang et al. 2004: Gaussian window sigma 1.5, K1 0.01, K2 0.03, range 1) via kornia."""
    from kornia.metrics import ssim as kornia_ssim

    window = min(window, a.shape[-1] - (1 - a.shape[-1] % 2))  # odd and no larger than the image
    return float(kornia_ssim(a, b, window, max_val=1.0).mean())


def agreement(predicted: np.ndarray, truth: np.ndarray, identity: np.ndarray) -> dict[str, dict[str, float]]:
    """L1, PSNR and SSIM of ``predicted`` and of the identity baseline (the input itself) to ``truth``."""
    t = torch.from_numpy(np.asarray(truth, np.float32))
    out = {}
    for label, images in (("model", predicted), ("identity", identity)):
        x = torch.from_numpy(np.asarray(images, np.float32))
        out[label] = {"l1": l1(x, t), "psnr": psnr(x, t), "ssim": ssim(x, t)}
    return out
