"""Shared by the step benchmarks (``pix2pix_step.py``, ``acgan_step.py``): the plain-PyTorch reference
network gets exactly the weights of synthaug's, so both time the same computation, and the two
training steps are timed in turn, step by step, so that both see the same machine load."""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable

from torch import nn


def copy_weights(src: nn.Module, dst: nn.Module) -> None:
    """Same architecture means the same tensors in the same order: copy them across."""
    a, b = list(src.state_dict().values()), dst.state_dict()
    assert len(a) == len(b), (len(a), len(b))
    for (name, tensor), value in zip(b.items(), a):
        assert tensor.shape == value.shape, (name, tensor.shape, value.shape)
        tensor.copy_(value)


def time_steps(steps: int, batch: int, ours: Callable, reference: Callable, *inputs) -> dict[str, Any]:
    """``steps`` alternating calls of both training steps on ``inputs``: images/s of each (median step)
    and their ratio, with every step's seconds."""
    times: dict[str, list[float]] = {"synthaug": [], "reference": []}
    for _ in range(steps):
        for name, step in (("synthaug", ours), ("reference", reference)):
            start = time.perf_counter()
            step(*inputs)
            times[name].append(time.perf_counter() - start)
    rate = {k: batch / statistics.median(v) for k, v in times.items()}
    return {"batch": batch, "synthaug_img_s": round(rate["synthaug"], 3),
            "reference_img_s": round(rate["reference"], 3),
            "ratio": round(rate["synthaug"] / rate["reference"], 3),
            "step_s": {k: [round(t, 3) for t in v] for k, v in times.items()}}
