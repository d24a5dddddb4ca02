"""Training throughput of synthaug's pix2pix step against a plain-PyTorch reference step, same run.

The reference below is written from scratch in the plain style of pix2pix implementations (flat
nn.Sequential lists, the standard D-then-G update with D frozen for the G update). It has the same
architecture as synthaug's networks (U-Net depth 8 / ngf 64 and the 70x70 PatchGAN at 256 px): the
script copies synthaug's initial weights into it and checks that both give the same outputs before
timing. Steps alternate between the two so that load on a shared machine hits both alike; the
figure is images/s = batch / median step time.

    python benchmarks/pix2pix_step.py [--size 256] [--batches 1 8] [--steps 8]
    python benchmarks/pix2pix_step.py --batches 1 --steps 1 --ngf 8    # a smoke run: narrow networks

``--ngf`` sets the width of both networks on both sides (ngf = ndf; the paper's and the default: 64).

Prints one JSON line: {"benchmark": "pix2pix_step", ..., "results": [{"batch", "synthaug_img_s",
"reference_img_s", "ratio"}, ...]}, ratio = synthaug / reference.
"""

from __future__ import annotations

import argparse
import json
import platform

import torch
from step_common import copy_weights, time_steps  # benchmarks/ is the script's own folder
from torch import nn

from synthaug_plugins.pix2pix_translator.training import Pix2PixNets


# ---- the reference: plain PyTorch ------------------------------------------------------------
class ReferenceUNet(nn.Module):
    def __init__(self, channels=1, ngf=64, depth=8):
        super().__init__()
        widths = [ngf * min(2 ** i, 8) for i in range(depth)]
        self.downs = nn.ModuleList()
        prev = channels
        for i, w in enumerate(widths):
            norm = 0 < i < depth - 1
            layers = [nn.Conv2d(prev, w, 4, 2, 1, bias=not norm)] + ([nn.BatchNorm2d(w)] if norm else [])
            self.downs.append(nn.Sequential(*layers, nn.LeakyReLU(0.2, True)))
            prev = w
        self.ups = nn.ModuleList()
        for k in range(depth - 1):
            w = widths[depth - 2 - k]
            layers = [nn.ConvTranspose2d(prev, w, 4, 2, 1, bias=False), nn.BatchNorm2d(w)]
            self.ups.append(nn.Sequential(*layers, *([nn.Dropout(0.5)] if k < 3 else []), nn.ReLU(True)))
            prev = 2 * w
        self.last = nn.Sequential(nn.ConvTranspose2d(prev, channels, 4, 2, 1), nn.Tanh())

    def forward(self, x):
        skips = []
        for down in self.downs:
            x = down(x)
            skips.append(x)
        for up, skip in zip(self.ups, reversed(skips[:-1])):
            x = torch.cat([up(x), skip], 1)
        return self.last(x)


def reference_patchgan(channels=1, ndf=64):
    return nn.Sequential(
        nn.Conv2d(2 * channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True),
        nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, True),
        nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 4), nn.LeakyReLU(0.2, True),
        nn.Conv2d(ndf * 4, ndf * 8, 4, 1, 1, bias=False), nn.BatchNorm2d(ndf * 8), nn.LeakyReLU(0.2, True),
        nn.Conv2d(ndf * 8, 1, 4, 1, 1))


class ReferenceStep:
    def __init__(self, G, D, lr=2e-4, lambda_l1=100.0):
        self.G, self.D, self.lambda_l1 = G, D, lambda_l1
        self.opt_G = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.999))
        self.opt_D = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))
        self.bce = nn.BCEWithLogitsLoss()

    def __call__(self, A, B):
        fake = self.G(A)
        for p in self.D.parameters():
            p.requires_grad = True
        self.opt_D.zero_grad()
        pred_real = self.D(torch.cat([A, B], 1))
        pred_fake = self.D(torch.cat([A, fake.detach()], 1))
        loss_D = 0.5 * (self.bce(pred_real, torch.ones_like(pred_real))
                        + self.bce(pred_fake, torch.zeros_like(pred_fake)))
        loss_D.backward()
        self.opt_D.step()
        for p in self.D.parameters():
            p.requires_grad = False
        self.opt_G.zero_grad()
        pred_fake = self.D(torch.cat([A, fake], 1))
        loss_G = self.bce(pred_fake, torch.ones_like(pred_fake)) + self.lambda_l1 * nn.functional.l1_loss(fake, B)
        loss_G.backward()
        self.opt_G.step()
        return loss_D.item(), loss_G.item()


# ---- timing ----------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--steps", type=int, default=8,
                        help="timed steps per side (after one warm-up); fewer is too noisy")
    parser.add_argument("--ngf", type=int, default=64, help="width of G and D (ngf = ndf), both sides")
    args = parser.parse_args()
    torch.manual_seed(0)

    ours = Pix2PixNets(1, args.size, ngf=args.ngf, ndf=args.ngf)
    assert ours.generator.depth == 8 and ours.discriminator.n_layers == 3, "the reference is written for 256 px"
    G, D = ReferenceUNet(ngf=args.ngf), reference_patchgan(ndf=args.ngf)
    copy_weights(ours.generator, G)
    copy_weights(ours.discriminator, D)
    with torch.no_grad():  # same architecture: same outputs for the same weights (eval: no dropout)
        x = torch.rand(2, 1, args.size, args.size) * 2 - 1
        ours.eval(), G.eval(), D.eval()
        assert torch.allclose(ours.generator(x), G(x), atol=1e-5)
        assert torch.allclose(ours.discriminator(x, x), D(torch.cat([x, x], 1)), atol=1e-4)
        ours.train(), G.train(), D.train()
    reference = ReferenceStep(G, D)

    results = []
    for batch in args.batches:
        A = torch.rand(batch, 1, args.size, args.size) * 2 - 1
        B = torch.rand(batch, 1, args.size, args.size) * 2 - 1
        ours.train_step(A, B), reference(A, B)  # warm-up (allocator, oneDNN primitives)
        results.append(time_steps(args.steps, batch, ours.train_step, reference, A, B))
    print(json.dumps({"benchmark": "pix2pix_step", "size": args.size, "ngf": args.ngf, "steps": args.steps,
                      "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "machine": platform.machine(), "results": results}))


if __name__ == "__main__":
    main()
