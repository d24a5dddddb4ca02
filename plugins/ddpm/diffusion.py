"""One training step and the DDIM sampler with classifier-free guidance, free of ImageSet handling so
that ``benchmarks/ddpm.py`` times exactly what the synthesizer runs.

Training (Ho et al. 2020): ``x_t = sqrt(a_t) x_0 + sqrt(1 - a_t) eps`` with MONAI's
``DDPMScheduler.add_noise``, and the mean squared error of the U-Net's output against ``eps`` (or
against ``v = sqrt(a_t) eps - sqrt(1 - a_t) x_0``, ``get_velocity``, for v-prediction).

Sampling: MONAI's ``DDIMScheduler`` (eta 0: deterministic given the initial noise, predicted x_0
clipped to [-1, 1]) at ``steps`` steps. Guidance ``g`` combines the conditional and the unconditional
("no class") outputs as ``u + g (c - u)``: both come from one forward of the doubled batch (for ``g`` 0
or 1 only the one needed is computed), under ``torch.inference_mode``, channels-last.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .options import SCHEDULES

CHANNELS_LAST = torch.channels_last


class Diffusion:
    """The noise schedule of a fit (``timesteps``, ``schedule``, ``prediction``), its training step and
    its sampler."""

    def __init__(self, timesteps: int = 1000, schedule: str = "cosine", prediction: str = "v_prediction"):
        from monai.networks.schedulers import DDIMScheduler, DDPMScheduler

        self.timesteps, self.schedule, self.prediction = int(timesteps), schedule, prediction
        self.train_schedule = DDPMScheduler(num_train_timesteps=self.timesteps, schedule=SCHEDULES[schedule],
                                            prediction_type=prediction)
        self.sampler = DDIMScheduler(num_train_timesteps=self.timesteps, schedule=SCHEDULES[schedule],
                                     prediction_type=prediction, clip_sample=True)

    # ---- training ---------------------------------------------------------------------------------
    def loss(self, unet: nn.Module, x0: torch.Tensor, labels: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
             bf16: bool = False) -> torch.Tensor:
        """The step's loss on images ``x0`` in [-1, 1] with class ``labels`` (``K`` for "no class")."""
        x0 = x0.contiguous(memory_format=CHANNELS_LAST)
        noisy = self.train_schedule.add_noise(x0, noise, t)
        target = noise if self.prediction == "epsilon" else self.train_schedule.get_velocity(x0, noise, t)
        with torch.autocast(x0.device.type, dtype=torch.bfloat16, enabled=bf16):
            out = unet(noisy, t, class_labels=labels)
        return nn.functional.mse_loss(out.float(), target)

    def train_step(self, unet: nn.Module, optimizer, x0, labels, t, noise, *, ema=None, grad_sync=None,
                   bf16: bool = False) -> dict[str, float]:
        """One Adam step of ``unet`` on the batch; ``grad_sync(unet)`` after the backward (torchrun), then
        the EMA's update. Returns the loss."""
        optimizer.zero_grad(set_to_none=True)
        loss = self.loss(unet, x0, labels, t, noise, bf16)
        loss.backward()
        if grad_sync is not None:
            grad_sync(unet)
        optimizer.step()
        if ema is not None:
            ema.update(unet)
        return {"loss": float(loss.detach())}

    # ---- sampling ---------------------------------------------------------------------------------
    @torch.inference_mode()
    def sample(self, unet: nn.Module, noise: torch.Tensor, label: int, no_class: int, *, steps: int,
               guidance: float, bf16: bool = False, progress=None) -> torch.Tensor:
        """Images in [-1, 1] of class ``label`` from the initial ``noise`` (on the network's device):
        ``steps`` DDIM steps with guidance ``guidance``; ``progress.update()`` after each step."""
        device = noise.device
        x = noise.float().contiguous(memory_format=CHANNELS_LAST)
        n = len(x)
        if guidance == 0 or guidance == 1:  # one prediction is all the combination needs
            labels = torch.full((n,), no_class if guidance == 0 else label, device=device)
        else:
            labels = torch.cat([torch.full((n,), label, device=device), torch.full((n,), no_class, device=device)])
        self.sampler.set_timesteps(int(steps))
        doubled = len(labels) > n
        for t in self.sampler.timesteps:
            inputs = torch.cat([x, x]) if doubled else x
            inputs = inputs.contiguous(memory_format=CHANNELS_LAST)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                out = unet(inputs, t.to(device).expand(len(inputs)), class_labels=labels).float()
            if doubled:
                conditional, unconditional = out.chunk(2)
                out = torch.lerp(unconditional, conditional, float(guidance))  # u + g (c - u)
            x, _ = self.sampler.step(out, int(t), x)
            if progress is not None:
                progress.update()
        return x


def initial_noise(seed: int, rows: slice, shape: tuple[int, ...]) -> torch.Tensor:
    """The initial noise of images ``rows`` of a class's images for ``seed``: image ``k`` from
    ``default_rng([seed, k])`` alone, so any split of the rows into chunks gives the same images."""
    out = np.empty((rows.stop - rows.start, *shape), np.float32)
    for i, k in enumerate(range(rows.start, rows.stop)):
        out[i] = np.random.default_rng([int(seed), int(k)]).standard_normal(shape, dtype=np.float32)
    return torch.from_numpy(out)
