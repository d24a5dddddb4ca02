"""Process-wide settings that a synthaug call hands back as it found them.

Some of what synthaug runs changes settings that belong to the whole process, not to the call:

- numba's OpenMP threading layer sets OpenMP's thread count, and torch reads the same setting: after
  one Siddon projection, a process pinned to 1 torch thread ran at 2 (a DataLoader worker, a notebook
  or a torchrun rank then silently oversubscribes its cores);
- training and fitting seed torch's, numpy's and Python's global generators, so that a seed gives the
  same weights;
- a rank other than 0 silences progress bars.

:func:`kept` snapshots these before a call and restores them after it, on success and on error; the
core wraps every call into plugin code with it (``fit``, ``generate``, ``project``, training), so a
third-party plugin that seeds or sets threads cannot leak either. :func:`snapshot` and
:func:`differences` are what the test suite's guard uses to fail a test that leaves any of them
changed. torch is only looked at when something has imported it already: this module imports nothing
heavy.
"""

from __future__ import annotations

import functools
import random
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, TypeVar

import numpy as np

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class ProcessState:
    """What :func:`kept` restores. ``torch`` is None when torch was not imported at the snapshot."""

    python_rng: Any
    numpy_rng: Any
    quiet: bool
    torch: dict[str, Any] | None


def _torch_state(torch) -> dict[str, Any]:
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    return {
        "threads": torch.get_num_threads(),
        "rng": torch.get_rng_state(),
        "cuda_rng": cuda,
        "default_dtype": torch.get_default_dtype(),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "deterministic_warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "matmul_precision": torch.get_float32_matmul_precision(),
    }


def snapshot() -> ProcessState:
    from synthaug.kit import progress

    torch = sys.modules.get("torch")
    return ProcessState(random.getstate(), np.random.get_state(), progress.is_quiet(),
                        _torch_state(torch) if torch is not None else None)


def restore(state: ProcessState) -> None:
    from synthaug.kit import progress

    random.setstate(state.python_rng)
    np.random.set_state(state.numpy_rng)
    progress.set_quiet(state.quiet)
    torch = sys.modules.get("torch")
    if torch is None or state.torch is None:
        return
    saved = state.torch
    if torch.get_num_threads() != saved["threads"]:
        torch.set_num_threads(saved["threads"])
    torch.set_rng_state(saved["rng"])
    if saved["cuda_rng"] is not None:
        torch.cuda.set_rng_state_all(saved["cuda_rng"])
    torch.set_default_dtype(saved["default_dtype"])
    if (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()) != \
            (saved["deterministic"], saved["deterministic_warn_only"]):
        # only when changed: setting it imports torch._inductor (and sympy) on first use, seconds of
        # imports that a Ctrl-C arriving during a restore would cut in half, breaking the next restore
        torch.use_deterministic_algorithms(saved["deterministic"], warn_only=saved["deterministic_warn_only"])
    torch.backends.cudnn.benchmark = saved["cudnn_benchmark"]
    torch.backends.cudnn.deterministic = saved["cudnn_deterministic"]
    torch.set_float32_matmul_precision(saved["matmul_precision"])


def differences(before: ProcessState, after: ProcessState, *, generators: bool = True) -> list[str]:
    """The names of the settings that differ between two snapshots (empty when none does);
    ``generators=False`` leaves the global random generators out of the comparison."""
    changed = []
    if generators and before.python_rng != after.python_rng:
        changed.append("Python's random state")
    if generators and not _same_numpy_state(before.numpy_rng, after.numpy_rng):
        changed.append("numpy's global random state")
    if before.quiet != after.quiet:
        changed.append("progress quiet")
    if before.torch is not None and after.torch is not None:
        for key, value in before.torch.items():
            if not generators and key in ("rng", "cuda_rng"):
                continue
            other = after.torch[key]
            same = _same_tensors(value, other) if key in ("rng", "cuda_rng") else value == other
            if not same:
                changed.append(f"torch {key.replace('_', ' ')} ({_shown(value)} -> {_shown(other)})")
    return changed


def _same_numpy_state(a, b) -> bool:
    return a[0] == b[0] and np.array_equal(a[1], b[1]) and tuple(a[2:]) == tuple(b[2:])


def _same_tensors(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, list):
        return len(a) == len(b) and all(_same_tensors(x, y) for x, y in zip(a, b))
    return bool((a == b).all())


def _shown(value) -> str:
    return "state" if hasattr(value, "shape") or isinstance(value, list) else repr(value)


@contextmanager
def kept() -> Iterator[None]:
    """Run the body, then put every setting of :class:`ProcessState` back as it was."""
    state = snapshot()
    try:
        yield
    finally:
        restore(state)


def keeps_state(function: F) -> F:
    """Decorator: ``function`` runs inside :func:`kept`."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with kept():
            return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
