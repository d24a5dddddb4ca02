"""Shared by the step benchmarks (``pix2pix_step.py``, ``acgan_step.py``): the plain-PyTorch reference
network gets exactly the weights of synthaug's, so both time the same computation."""

from __future__ import annotations

from torch import nn


def copy_weights(src: nn.Module, dst: nn.Module) -> None:
    """Same architecture means the same tensors in the same order: copy them across."""
    a, b = list(src.state_dict().values()), dst.state_dict()
    assert len(a) == len(b), (len(a), len(b))
    for (name, tensor), value in zip(b.items(), a):
        assert tensor.shape == value.shape, (name, tensor.shape, value.shape)
        tensor.copy_(value)
