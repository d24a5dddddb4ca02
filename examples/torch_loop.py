"""A user's own PyTorch training loop over a balanced store: synthaug only opens the data.

    synthaug balance --synth augment --data kaggle --data-dir "COVID-19 Radiography Database" --size 64 --out b.h5
    python examples/torch_loop.py --store b.h5 --epochs 2

``synthaug.open_store`` gives a ``torch.utils.data.Dataset`` of ``(image, label)`` like torchvision's
``ImageFolder``; everything else here (the network, Adam, the loop) is plain PyTorch.
"""

from __future__ import annotations

import argparse
from collections import Counter

import torch
from torch import nn
from torch.utils.data import DataLoader

import synthaug


class SmallCNN(nn.Module):
    """Two convolutions and a linear head: enough to show the loop, not to read radiographs."""

    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(32, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def centre(image: torch.Tensor) -> torch.Tensor:
    """The user's own transform: [0, 1] -> [-1, 1]."""
    return image * 2 - 1


def train(store: str, epochs: int = 1, batch_size: int = 8, lr: float = 1e-3, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    dataset = synthaug.open_store(store, "train", transform=centre)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed))
    model = SmallCNN(dataset.image_shape[0], len(dataset.classes))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses, seen = [], Counter()
    for _ in range(epochs):
        total = 0.0
        for images, labels in loader:
            loss = nn.functional.cross_entropy(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(labels)
            seen.update(dataset.classes[k] for k in labels.tolist())
        losses.append(total / len(dataset))
    return {"losses": losses, "seen": dict(seen), "classes": dataset.classes, "images": len(dataset)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True, help="A store written by `synthaug balance`.")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args(argv)
    summary = train(args.store, args.epochs)
    print(f"{summary['images']} training images per epoch; images seen per class {summary['seen']}; "
          f"mean loss per epoch {[round(x, 4) for x in summary['losses']]}")


if __name__ == "__main__":
    main()
