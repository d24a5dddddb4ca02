"""Training throughput of synthaug's ACGAN step against a plain-PyTorch reference step, same run.

The reference below is written from scratch in the plain style of ACGAN implementations (an embedding
multiplied into the noise, flat nn.Sequential stacks, two linear heads, the standard D-then-G update
with D frozen for the G update, Adam without the fused update). It has the same architecture as
synthaug's networks for image sizes that are 4 x a power of two (latent 100, ngf = ndf = 64, three
classes): the script copies synthaug's initial weights into it, checks that both give the same
outputs and the same losses on one training step before timing. Steps alternate between the two so
that load on a shared machine hits both alike; the figure is images/s = batch / median step time.

    python benchmarks/acgan_step.py [--size 128] [--batches 8 32] [--steps 8]

Prints one JSON line: {"benchmark": "acgan_step", ..., "results": [{"batch", "synthaug_img_s",
"reference_img_s", "ratio"}, ...]}, ratio = synthaug / reference.
"""

from __future__ import annotations

import argparse
import json
import math
import platform

import torch
from step_common import copy_weights, time_steps  # benchmarks/ is the script's own folder
from torch import nn

from synthaug_plugins.acgan.training import ACGANNets

CLASSES, LATENT, WIDTH = 3, 100, 64


# ---- the reference: plain PyTorch ------------------------------------------------------------
class ReferenceGenerator(nn.Module):
    def __init__(self, size, channels=1, classes=CLASSES, latent=LATENT, ngf=WIDTH):
        super().__init__()
        n_up = int(math.log2(size // 4))
        chans = [ngf * min(2 ** i, 8) for i in range(n_up)][::-1]
        self.label_emb = nn.Embedding(classes, latent)
        self.fc = nn.Linear(latent, chans[0] * 16, bias=False)
        layers = [nn.BatchNorm2d(chans[0]), nn.ReLU(True)]
        for a, b in zip(chans[:-1], chans[1:]):
            layers += [nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(chans[-1], channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.top = chans[0]

    def forward(self, z, y):
        return self.net(self.fc(self.label_emb(y) * z).view(-1, self.top, 4, 4))


class ReferenceDiscriminator(nn.Module):
    def __init__(self, size, channels=1, classes=CLASSES, ndf=WIDTH, p=0.25):
        super().__init__()
        n_down = int(math.log2(size // 4))
        layers, prev = [], channels
        for i in range(n_down):
            out = ndf * min(2 ** i, 8)
            layers.append(nn.Conv2d(prev, out, 4, 2, 1, bias=(i == 0)))
            if i:
                layers.append(nn.BatchNorm2d(out))
            layers += [nn.LeakyReLU(0.2, True), nn.Dropout(p)]
            prev = out
        self.net = nn.Sequential(*layers, nn.Flatten())
        self.src = nn.Linear(prev * 16, 1)
        self.cls = nn.Linear(prev * 16, classes)

    def forward(self, x):
        h = self.net(x)
        return self.src(h).view(-1), self.cls(h)


class ReferenceStep:
    def __init__(self, G, D, lr=2e-4):
        self.G, self.D = G, D
        self.opt_G = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.999))
        self.opt_D = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))
        self.bce, self.ce = nn.BCEWithLogitsLoss(), nn.CrossEntropyLoss()

    def __call__(self, x, y, z, c):
        fake = self.G(z, c)
        self.opt_D.zero_grad()
        src_real, cls_real = self.D(x)
        src_fake, cls_fake = self.D(fake.detach())
        loss_D = 0.5 * (self.bce(src_real, torch.ones_like(src_real)) + self.bce(src_fake, torch.zeros_like(src_fake))
                        + self.ce(cls_real, y) + self.ce(cls_fake, c))
        loss_D.backward()
        self.opt_D.step()
        for p in self.D.parameters():
            p.requires_grad = False
        self.opt_G.zero_grad()
        src, cls = self.D(fake)
        loss_G = self.bce(src, torch.ones_like(src)) + self.ce(cls, c)
        loss_G.backward()
        self.opt_G.step()
        for p in self.D.parameters():
            p.requires_grad = True
        return loss_D.item(), loss_G.item()


# ---- timing ----------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128, help="4 x a power of two (8, 16, ..., 256)")
    parser.add_argument("--batches", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--steps", type=int, default=8, help="timed steps per side (after one warm-up); fewer is noisy")
    args = parser.parse_args()
    torch.manual_seed(0)

    ours = ACGANNets(1, args.size, CLASSES, latent_dim=LATENT, ngf=WIDTH, ndf=WIDTH)
    assert ours.generator.start == 4, "the reference is written for sizes 4 x 2^k"
    G, D = ReferenceGenerator(args.size), ReferenceDiscriminator(args.size)
    copy_weights(ours.generator, G)
    copy_weights(ours.discriminator, D)
    z, y = torch.randn(4, LATENT), torch.tensor([0, 1, 2, 1])
    x = torch.rand(4, 1, args.size, args.size) * 2 - 1
    with torch.no_grad():  # same architecture: same outputs for the same weights (eval: no dropout)
        ours.eval(), G.eval(), D.eval()
        assert torch.allclose(ours.generator(z, y), G(z, y), atol=1e-5)
        for a, b in zip(ours.discriminator(x), D(x)):
            assert torch.allclose(a, b, atol=1e-4)
        ours.train(), G.train(), D.train()
    reference = ReferenceStep(G, D)
    # the same step: with the same dropout masks (same seed, same order of draws) the same losses
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        losses = ours.train_step(x, y, z, y.flip(0))
        torch.manual_seed(1)
        ref_d, ref_g = reference(x, y, z, y.flip(0))
    assert abs(losses["D"] - ref_d) < 1e-4, (losses, ref_d, ref_g)
    assert abs(losses["G_adv"] + losses["G_cls"] - ref_g) < 1e-4, (losses, ref_d, ref_g)

    results = []
    for batch in args.batches:
        x = torch.rand(batch, 1, args.size, args.size) * 2 - 1
        y, c = torch.randint(CLASSES, (batch,)), torch.randint(CLASSES, (batch,))
        z = torch.randn(batch, LATENT)
        ours.train_step(x, y, z, c), reference(x, y, z, c)  # warm-up (allocator, oneDNN primitives)
        results.append(time_steps(args.steps, batch, ours.train_step, reference, x, y, z, c))
    print(json.dumps({"benchmark": "acgan_step", "size": args.size, "steps": args.steps,
                      "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "machine": platform.machine(), "results": results}))


if __name__ == "__main__":
    main()
