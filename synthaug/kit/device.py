"""The one device convention: ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``.

The core hands the run's device (``--device``) to every synthesizer as ``Synthesizer.device`` and to
the training loop as ``TrainConfig.device``; plugins turn it into a ``torch.device`` with
:func:`resolve_device`. :func:`check_device` checks a value without importing torch unless it names
CUDA, so the command line can refuse a bad ``--device`` before any work.
"""

from __future__ import annotations

import re

from synthaug.errors import SynthaugError

#: The device names (``cuda:N`` is ``cuda`` with a device index).
DEVICES = ("auto", "cpu", "cuda")
#: How the messages spell the accepted values.
EXPECTED = "auto, cpu, cuda or cuda:N"
_PATTERN = re.compile(r"(auto|cpu|cuda)(?::(\d+))?")


def check_device(name, what: str = "device") -> str:
    """``name`` as a checked string (``auto``, ``cpu``, ``cuda``, ``cuda:N``); a one-line error for a value
    that is none of these, for CUDA where there is none, and for ``cuda:N`` beyond the devices present."""
    text = str(name).strip().lower()
    match = _PATTERN.fullmatch(text)
    if match is None or (match.group(2) is not None and match.group(1) != "cuda"):
        raise SynthaugError(f"{what} must be one of {EXPECTED}; got {str(name)!r}")
    if match.group(1) == "cuda":
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise SynthaugError(f"{what} {text!r}: no CUDA device is available (use cpu or auto)")
        index = match.group(2)
        if index is not None and int(index) >= count:
            raise SynthaugError(f"{what} {text!r}: this machine has {count} CUDA device(s), "
                                f"cuda:0 to cuda:{count - 1}")
    return text


def resolve_device(name="auto"):
    """The ``torch.device`` for ``name`` (``auto``: ``cuda`` when available, else ``cpu``); asking for
    CUDA where there is none, or for a ``cuda:N`` that does not exist, is a one-line error. Under
    torchrun (``WORLD_SIZE`` > 1) a bare ``cuda`` (or ``auto`` on a CUDA machine) is this process's own
    GPU, ``cuda:LOCAL_RANK``."""
    import os

    import torch

    if isinstance(name, torch.device):
        name = str(name)
    text = check_device(name)
    if text == "auto":
        text = "cuda" if torch.cuda.is_available() else "cpu"
    if text == "cuda" and int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
        text = f"cuda:{int(os.environ.get('LOCAL_RANK', '0') or 0)}"
    return torch.device(text)
