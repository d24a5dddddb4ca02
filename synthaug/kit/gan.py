"""Helpers the GAN synthesizers share (pix2pix, acgan): the adversarial step's skeleton, the tanh
range, DCGAN initialisation, fused Adam and a hash of a network's weights. torch is imported by the
functions, not by this module."""

from __future__ import annotations

import hashlib

import numpy as np


def adversarial_step(generator, discriminator, g_opt, d_opt, fake, d_losses, g_losses, grad_sync=None) -> dict:
    """One D update, then one G update: the skeleton every GAN step here shares.

    ``fake``: G's output for this batch (computed by the caller, under its autocast). ``d_losses(fake)``
    gets it detached and returns ``(D's loss, {name: value})``; ``g_losses(fake)`` returns G's. D's
    weights are frozen during G's update (the gradients flow through D, not into it: that work is
    skipped). ``grad_sync(module)``: called after each backward, before the optimiser steps (under
    torchrun the average of the gradients over the processes, :meth:`Training.grad_sync`). Returns
    every loss as a float.
    """
    d_opt.zero_grad(set_to_none=True)
    d_loss, logs = d_losses(fake.detach())
    d_loss.backward()
    if grad_sync is not None:
        grad_sync(discriminator)
    d_opt.step()

    discriminator.requires_grad_(False)
    g_opt.zero_grad(set_to_none=True)
    g_loss, g_logs = g_losses(fake)
    g_loss.backward()
    if grad_sync is not None:
        grad_sync(generator)
    g_opt.step()
    discriminator.requires_grad_(True)
    return {k: float(v.detach()) if hasattr(v, "detach") else float(v) for k, v in {**logs, **g_logs}.items()}


def to_tanh_range(images: np.ndarray):
    """[0, 1] images -> a [-1, 1] float32 tensor (a tanh generator's range)."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)) * 2 - 1


def from_tanh_range(x) -> np.ndarray:
    """A [-1, 1] tensor (any device, any float dtype) -> a [0, 1] float32 array."""
    return ((x.detach().float().clamp(-1, 1) + 1) / 2).cpu().numpy().astype(np.float32)


def dcgan_init(module, std: float = 0.02, *, linear: bool = False) -> None:
    """DCGAN/pix2pix initialisation: (transposed) convolution weights N(0, std) (and linear layers with
    ``linear=True``), biases 0; BatchNorm weights N(1, std), biases 0."""
    from torch import nn

    kinds = (nn.Conv2d, nn.ConvTranspose2d) + ((nn.Linear,) if linear else ())
    for m in module.modules():
        if isinstance(m, kinds):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)


def fused_adam(params, lr: float, betas):
    """Adam with the fused (single-kernel) update where this torch has it: for a large generator the
    default per-tensor update is a sizeable share of a CPU step (benchmarks/pix2pix_step.py). Same
    algorithm; falls back to the default update."""
    import torch

    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, betas=tuple(betas), fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr, betas=tuple(betas))


def weights_hash(module) -> str:
    """sha256 over parameter and buffer names and values (a generator's checkpoint hash)."""
    h = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()
