"""The run context: what every plugin call of one run shares, built once at the edge.

The command line (``synthaug balance``, ``fit``, ``experiment``), the Python API and an experiment cell
each build one :class:`RunContext` and hand it to the synthesizer's ``check``, ``fit`` and
``generate`` through the contract (the ``run=`` keyword). Nothing reaches a plugin by another route:
no attribute is set on it after construction, no option is looked up by field name.

numpy-free and torch-free: ``synthaug.kit`` turns the fields into a ``torch.device``
(:func:`synthaug.kit.device.resolve_device`) and a process group (:func:`synthaug.kit.distributed.world_of`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

__all__ = ["RunContext"]


@dataclass(frozen=True)
class RunContext:
    """One run's seed, device, work directory, torchrun world and progress.

    - ``seed``: the run's seed (``--seed``, an experiment cell's seed). It fixes the test split, a
      trainable synthesizer's initial weights and draws, the per-class generation seeds and the
      classifier's training. It never changes the data set itself: a simulated source's data has a
      seed of its own (``--data-seed``, an experiment's ``data.seed``).
    - ``device``: ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N`` (``--device``).
    - ``work_dir``: the one directory where ``fit`` may keep resumable state; it survives an
      interrupted fit so that a rerun resumes. None: keep nothing.
    - ``rank``, ``world_size``, ``local_rank``: the torchrun world (a world of one without torchrun).
    - ``progress``: whether progress bars are shown (the CLI's ``--quiet`` turns them off).
    """

    seed: int = 0
    device: str = "auto"
    work_dir: Path | None = None
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "seed", int(self.seed))
        object.__setattr__(self, "device", str(self.device))
        if self.work_dir is not None:
            object.__setattr__(self, "work_dir", Path(self.work_dir))

    @classmethod
    def from_environment(cls, *, seed: int = 0, device: str | None = "auto", work_dir: str | Path | None = None,
                         progress: bool = True) -> "RunContext":
        """A context for this process: the world from torchrun's environment (``RANK``, ``WORLD_SIZE``,
        ``LOCAL_RANK``; a world of one without them)."""
        env = os.environ
        return cls(seed=seed, device=device or "auto", work_dir=work_dir, rank=int(env.get("RANK", "0") or 0),
                   world_size=int(env.get("WORLD_SIZE", "1") or 1), local_rank=int(env.get("LOCAL_RANK", "0") or 0),
                   progress=progress)

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes and reports."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def but(self, **changes: Any) -> "RunContext":
        """A copy with ``changes`` (``run.but(work_dir=None)``)."""
        return replace(self, **changes)

    def describe(self) -> dict[str, Any]:
        """The fields as JSON values (what a run records of its context)."""
        return {"seed": self.seed, "device": self.device,
                "work_dir": str(self.work_dir) if self.work_dir is not None else None,
                "world_size": self.world_size}
