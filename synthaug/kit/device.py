"""The one device convention: ``auto`` (CUDA when available), ``cpu`` or ``cuda``."""

from __future__ import annotations

from synthaug.errors import SynthaugError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto"):
    """The ``torch.device`` for ``name``; asking for CUDA where there is none is a one-line error."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(name).startswith("cuda") and not torch.cuda.is_available():
        raise SynthaugError(f"device {name!r}: no CUDA device is available (use cpu or auto)")
    if not str(name).startswith(("cpu", "cuda")):
        raise SynthaugError(f"device must be one of {', '.join(DEVICES)}; got {name!r}")
    return torch.device(name)
