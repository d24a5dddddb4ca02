"""The ddpm synthesizer's training step and its sampler against the plain MONAI loops, same run.

Training: synthaug's step (``synthaug_plugins.ddpm.diffusion.Diffusion.train_step``: channels-last,
fused Adam, SDPA attention, and the EMA update that the reference does not do) against the plain MONAI
reference loop: the same ``DiffusionModelUNet`` as MONAI builds it by default, the same initial
weights, ``DDPMScheduler.add_noise`` + MSE (against the same target) and ``torch.optim.Adam``. Both
give the same loss on the same batch (checked before timing); steps alternate between the two so that
load on a shared machine hits both alike; images/s = batch / median step time.

Sampling: synthaug's DDIM sampler with classifier-free guidance (``Diffusion.sample``: the conditional
and unconditional predictions from one forward of the doubled batch, ``torch.inference_mode``,
channels-last) against the plain MONAI DDIM loop with two separate forwards per step under
``torch.no_grad``; the same images from the same noise (checked); images/s = batch / median seconds
of a whole sampling run.

    python benchmarks/ddpm.py [--preset cpu] [--size 64] [--batch 16] [--train-steps 6]
                              [--sample-batch 16] [--ddim-steps 10] [--guidance 2] [--repeats 5]

Prints one JSON line: {"benchmark": "ddpm", ..., "train": {"batch", "synthaug_img_s", "reference_img_s",
"ratio", "ratio_fastest", "step_s"}, "sample": {"batch", "ddim_steps", "guidance", "synthaug_img_s",
"reference_img_s", "ratio", "ratio_fastest", "run_s"}}: ratio = synthaug / reference images/s of the
median runs; ratio_fastest the same of each side's fastest run (the least disturbed on a shared machine).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time

import torch
from step_common import copy_weights, time_steps  # benchmarks/ is the script's own folder
from torch import nn

from synthaug_plugins.ddpm.diffusion import Diffusion
from synthaug_plugins.ddpm.networks import EMA, attention_levels, build_unet
from synthaug_plugins.ddpm.options import SCHEDULES, DDPMConfig

CLASSES = 3


def reference_unet(config: DDPMConfig, channels: int = 1) -> nn.Module:
    """The same U-Net as MONAI builds it by default (plain attention, contiguous tensors)."""
    from monai.networks.nets import DiffusionModelUNet

    widths = tuple(config.channels)
    return DiffusionModelUNet(spatial_dims=2, in_channels=channels, out_channels=channels,
                              num_res_blocks=config.res_blocks, channels=widths,
                              attention_levels=attention_levels(len(widths), config.attention),
                              norm_num_groups=math.gcd(32, *widths), num_head_channels=math.gcd(64, *widths),
                              num_class_embeds=CLASSES + 1)


class ReferenceStep:
    """The plain MONAI training loop's step: add_noise, one forward, MSE, Adam."""

    def __init__(self, unet, config: DDPMConfig):
        from monai.networks.schedulers import DDPMScheduler

        self.unet, self.prediction = unet, config.prediction
        self.scheduler = DDPMScheduler(num_train_timesteps=config.timesteps, schedule=SCHEDULES[config.schedule],
                                       prediction_type=config.prediction)
        self.optimizer = torch.optim.Adam(unet.parameters(), lr=config.lr)

    def loss(self, x0, labels, t, noise):
        noisy = self.scheduler.add_noise(x0, noise, t)
        target = noise if self.prediction == "epsilon" else self.scheduler.get_velocity(x0, noise, t)
        return nn.functional.mse_loss(self.unet(noisy, t, class_labels=labels), target)

    def __call__(self, x0, labels, t, noise):
        self.optimizer.zero_grad()
        loss = self.loss(x0, labels, t, noise)
        loss.backward()
        self.optimizer.step()
        return loss.item()


def reference_sample(unet, config: DDPMConfig, noise, label: int, guidance: float, steps: int):
    """The plain MONAI DDIM loop with classifier-free guidance: two forwards per step."""
    from monai.networks.schedulers import DDIMScheduler

    scheduler = DDIMScheduler(num_train_timesteps=config.timesteps, schedule=SCHEDULES[config.schedule],
                              prediction_type=config.prediction, clip_sample=True)
    scheduler.set_timesteps(steps)
    x = noise
    cond, uncond = torch.full((len(x),), label), torch.full((len(x),), CLASSES)
    with torch.no_grad():
        for t in scheduler.timesteps:
            tt = torch.full((len(x),), int(t))
            c, u = unet(x, tt, class_labels=cond), unet(x, tt, class_labels=uncond)
            x, _ = scheduler.step(u + guidance * (c - u), t, x)
    return x


def train_comparison(args, config: DDPMConfig) -> dict:
    torch.manual_seed(0)
    ours = build_unet(1, CLASSES, config).to(memory_format=torch.channels_last)
    reference = reference_unet(config)
    with torch.no_grad():  # MONAI zero-initialises each block's last convolution: give every weight a value
        for p in ours.parameters():
            p.add_(0.02 * torch.randn_like(p))
    copy_weights(ours, reference)
    diffusion, ema = Diffusion(config.timesteps, config.schedule, config.prediction), EMA(ours, config.ema_decay)
    from synthaug.kit.gan import fused_adam

    optimizer = fused_adam(ours.parameters(), config.lr, (0.9, 0.999))
    ref_step = ReferenceStep(reference, config)
    b, size = args.batch, args.size
    x0 = torch.rand(b, 1, size, size) * 2 - 1
    labels, t = torch.randint(CLASSES + 1, (b,)), torch.randint(config.timesteps, (b,))
    noise = torch.randn(b, 1, size, size)
    with torch.no_grad():  # the same loss on the same batch, before either network has stepped
        ours_loss, reference_loss = diffusion.loss(ours, x0, labels, t, noise), ref_step.loss(x0, labels, t, noise)
        assert abs(ours_loss.item() - reference_loss.item()) < 1e-4, (ours_loss, reference_loss)

    def step(*inputs):
        return diffusion.train_step(ours, optimizer, *inputs, ema=ema)

    step(x0, labels, t, noise), ref_step(x0, labels, t, noise)  # warm-up (allocator, oneDNN primitives)
    result = time_steps(args.train_steps, b, step, ref_step, x0, labels, t, noise)
    return {**result, "ratio_fastest": fastest_ratio(result["step_s"])}


def fastest_ratio(seconds: dict[str, list[float]]) -> float:
    """reference / synthaug of the fastest run of each: on a shared machine the least disturbed pair."""
    return round(min(seconds["reference"]) / min(seconds["synthaug"]), 3)


def sample_comparison(args, config: DDPMConfig) -> dict:
    torch.manual_seed(1)
    ours = build_unet(1, CLASSES, config).eval()
    with torch.no_grad():
        for p in ours.parameters():
            p.add_(0.02 * torch.randn_like(p))
    reference = reference_unet(config).eval()
    copy_weights(ours, reference)
    ours = ours.to(memory_format=torch.channels_last)
    diffusion = Diffusion(config.timesteps, config.schedule, config.prediction)
    noise = torch.randn(args.sample_batch, 1, args.size, args.size)
    run_ours = lambda: diffusion.sample(ours, noise, 1, CLASSES, steps=args.ddim_steps, guidance=args.guidance)  # noqa: E731
    run_reference = lambda: reference_sample(reference, config, noise, 1, args.guidance, args.ddim_steps)  # noqa: E731
    a, b = run_ours(), run_reference()  # also the warm-up
    assert torch.allclose(a, b, atol=1e-3), float((a - b).abs().max())
    seconds: dict[str, list[float]] = {"synthaug": [], "reference": []}
    for _ in range(args.repeats):
        for name, run in (("synthaug", run_ours), ("reference", run_reference)):
            start = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - start)
    rate = {k: args.sample_batch / statistics.median(v) for k, v in seconds.items()}
    return {"batch": args.sample_batch, "ddim_steps": args.ddim_steps, "guidance": args.guidance,
            "synthaug_img_s": round(rate["synthaug"], 3), "reference_img_s": round(rate["reference"], 3),
            "ratio": round(rate["synthaug"] / rate["reference"], 3), "ratio_fastest": fastest_ratio(seconds),
            "run_s": {k: [round(s, 3) for s in v] for k, v in seconds.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu", choices=["cpu", "paper"], help="the U-Net of this ddpm preset")
    parser.add_argument("--channels", default=None, help="U-Net widths instead of the preset's (e.g. 8,16)")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16, help="training batch")
    parser.add_argument("--train-steps", type=int, default=6, help="timed training steps per side (after a warm-up)")
    parser.add_argument("--sample-batch", type=int, default=16, help="images per sampling run")
    parser.add_argument("--ddim-steps", type=int, default=10)
    parser.add_argument("--guidance", type=float, default=2.0, help="> 1: both predictions every step")
    parser.add_argument("--repeats", type=int, default=5, help="timed sampling runs per side")
    args = parser.parse_args()
    config = DDPMConfig(preset=args.preset, **({"channels": args.channels} if args.channels else {}))
    train = train_comparison(args, config)
    sample = sample_comparison(args, config)
    print(json.dumps({"benchmark": "ddpm", "preset": args.preset, "channels": list(config.channels),
                      "attention": config.attention, "size": args.size, "prediction": config.prediction,
                      "train": train, "sample": sample, "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "cpus": os.cpu_count(), "load_avg_1min": round(os.getloadavg()[0], 2),
                      "machine": platform.machine()}))


if __name__ == "__main__":
    main()
