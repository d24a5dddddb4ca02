"""Training throughput (images/s at 224x224) of synthaug's classifiers vs plain PyTorch.

For each of resnet50 and densenet121, in the same process:

- **synthaug**: ``synthaug.train.train`` on a store of random 3x224x224 images (lazy HDF5 reading,
  kornia flip + rotation, in-model ImageNet normalisation, Adam): the second epoch's training
  batches (the first epoch warms up), each timed from the end of the previous step.
- **reference**: the same standard architecture written below in plain PyTorch, random tensors
  already in memory, cross-entropy + Adam, no augmentation: the bare cost of the network.

The reference is timed before and after synthaug's run (pooled). The headline figures are images
per CPU-second of this process (``time.process_time``): on a machine shared with other jobs, wall
time measures the other jobs as much as the network. Wall-clock rates (median step and mean) are
printed beside them under ``"all"``; with ``--threads 1`` the two agree on an idle machine.
Prints one JSON line: ``{"benchmark", "networks": [{"network", "synthaug_images_per_s",
"reference_images_per_s", "ratio", "all", ...}, ...], "min_ratio", "target", "ok", ...}``.

    python benchmarks/classifier_throughput.py [--steps 3] [--batch-size 8] [--threads 1]
    python benchmarks/classifier_throughput.py --steps 1 --batch-size 2 --networks resnet50 --size 64   # a smoke run

``--size`` changes the image side on both sides (224 by default, the networks' ImageNet size).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


# ---- plain-PyTorch references: the ImageNet architectures, written out ------------------------
class Bottleneck(nn.Module):
    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, planes, 1, bias=False), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False), nn.BatchNorm2d(planes)
        self.conv3, self.bn3 = nn.Conv2d(planes, planes * 4, 1, bias=False), nn.BatchNorm2d(planes * 4)
        self.downsample = None
        if stride != 1 or cin != planes * 4:
            self.downsample = nn.Sequential(nn.Conv2d(cin, planes * 4, 1, stride, bias=False),
                                            nn.BatchNorm2d(planes * 4))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet50(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
                                  nn.MaxPool2d(3, 2, 1))
        blocks, cin = [], 64
        for count, planes, stride in ((3, 64, 1), (4, 128, 2), (6, 256, 2), (3, 512, 2)):
            for i in range(count):
                blocks.append(Bottleneck(cin, planes, stride if i == 0 else 1))
                cin = planes * 4
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(2048, num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.blocks(self.stem(x)), 1), 1))


class DenseLayer(nn.Module):
    def __init__(self, cin, growth=32, bn_size=4):
        super().__init__()
        self.norm1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, bn_size * growth, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth)
        self.conv2 = nn.Conv2d(bn_size * growth, growth, 3, 1, 1, bias=False)

    def forward(self, x):
        new = self.conv2(F.relu(self.norm2(self.conv1(F.relu(self.norm1(x))))))
        return torch.cat([x, new], 1)


class DenseNet121(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        layers, ch = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
                      nn.MaxPool2d(3, 2, 1)], 64
        for b, count in enumerate((6, 12, 24, 16)):
            for _ in range(count):
                layers.append(DenseLayer(ch))
                ch += 32
            if b < 3:
                layers += [nn.BatchNorm2d(ch), nn.ReLU(inplace=True), nn.Conv2d(ch, ch // 2, 1, bias=False),
                           nn.AvgPool2d(2, 2)]
                ch //= 2
        layers.append(nn.BatchNorm2d(ch))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(ch, num_classes)

    def forward(self, x):
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(F.relu(self.features(x)), 1), 1))


REFERENCES = {"resnet50": ResNet50, "densenet121": DenseNet121}


def reference_steps(network: str, steps: int, batch_size: int, size: int = 224,
                    num_classes: int = 2) -> list[tuple[float, float]]:
    """(wall seconds, CPU seconds) of each training step after one warm-up step."""
    model = REFERENCES[network](num_classes).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(batch_size, 3, size, size)
    y = torch.randint(0, num_classes, (batch_size,))

    def step():
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()  # warm-up
    timings = []
    for _ in range(steps):
        wall, cpu = time.perf_counter(), time.process_time()
        step()
        timings.append((time.perf_counter() - wall, time.process_time() - cpu))
    return timings


def synthaug_epoch(network: str, store: Path, out: Path, batch_size: int) -> dict:
    """The second epoch's history record (the first warms up) of a real ``synthaug.train`` run."""
    from synthaug.pipeline.train import train

    records = []
    train(store, out, classifier=network, epochs=2, batch_size=batch_size, val_fraction=0.0,
          device="cpu", on_epoch_end=records.append)
    return records[-1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="timed training steps per measurement")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: CPU time is then a clean measure)")
    parser.add_argument("--networks", default="resnet50,densenet121")
    parser.add_argument("--size", type=int, default=224, help="image side")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from synthaug.contract.types import ImageSet
    from synthaug.kit import progress
    from synthaug.pipeline.store import write_store

    progress.set_quiet(True)
    n = args.steps * args.batch_size
    rng = np.random.default_rng(0)
    images = rng.random((n + 2, 3, args.size, args.size), dtype=np.float32)
    labels = np.arange(n + 2) % 2
    data = ImageSet(images, labels, ("covid", "normal"), [f"p{i}" for i in range(n + 2)])
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        store = write_store(Path(tmp) / "bench.h5",
                            {"train": data.subset(np.arange(n)), "test": data.subset([n, n + 1])})
        for network in args.networks.split(","):
            before = reference_steps(network, args.steps, args.batch_size, args.size)
            epoch = synthaug_epoch(network, store, Path(tmp) / network, args.batch_size)
            after = reference_steps(network, args.steps, args.batch_size, args.size)
            wall = np.array([t[0] for t in before + after])
            cpu = np.array([t[1] for t in before + after])
            rates = {  # images/s three ways; "cpu" is the headline on a shared machine
                "cpu": (n / epoch["train_cpu_seconds"], len(cpu) * args.batch_size / cpu.sum()),
                "wall_median": (args.batch_size / epoch["train_step_seconds_median"],
                                args.batch_size / np.median(wall)),
                "wall_mean": (epoch["train_images_per_s"], len(wall) * args.batch_size / wall.sum()),
            }
            ours, reference = rates["cpu"]
            results.append({"network": network, "synthaug_images_per_s": round(ours, 3),
                            "reference_images_per_s": round(reference, 3), "ratio": round(ours / reference, 3),
                            "all": {k: {"synthaug": round(a, 3), "reference": round(b, 3), "ratio": round(a / b, 3)}
                                    for k, (a, b) in rates.items()}})
    min_ratio = min(r["ratio"] for r in results)
    print(json.dumps({"benchmark": "classifier_throughput", "networks": results,
                      "measure": "images per CPU-second of the process", "min_ratio": min_ratio, "target": 0.9,
                      "ok": bool(min_ratio >= 0.9), "image_size": args.size, "batch_size": args.batch_size,
                      "steps": args.steps, "threads": torch.get_num_threads(), "torch": torch.__version__}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
