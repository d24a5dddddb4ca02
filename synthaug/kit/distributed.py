"""Several processes, one run: what the training loop needs from ``torch.distributed`` under torchrun.

``torchrun --nproc_per_node N synthaug train ...`` starts N copies of the command with ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous address in their environment. :func:`world` reads
them, joins the process group (NCCL when the run is on CUDA, gloo on the CPU) and says which part of
the work is this process's. Without torchrun (``WORLD_SIZE`` unset or 1) it is a world of one and
nothing here touches ``torch.distributed``, so single-process runs are exactly what they were.

The rules the loop keeps with it: every rank computes the same epoch order from the seed and takes
its interleaved share of each batch (:meth:`World.share`); gradients are averaged by
DistributedDataParallel; sums (loss, correct, seen) are added across ranks; only rank 0 writes
(checkpoints, manifest, figures) and shows progress.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    started_here: bool = False  # this call joined the group (and :meth:`close` leaves it)

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes and reports."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def share(self, batch: Sequence[int]) -> list[int]:
        """This rank's part of one global batch: every ``size``-th index from position ``rank``."""
        return list(batch[self.rank::self.size])

    def batches(self, order: Sequence[int], batch_size: int) -> list[list[int]]:
        """The global batches of ``order`` (``batch_size`` each, the last may be short); a last batch
        too small to give every rank an image is dropped (a rank with no data would stall the others)."""
        out = [list(order[i:i + batch_size]) for i in range(0, len(order), batch_size)]
        if out and len(out[-1]) < self.size:
            out.pop()
        return out

    def sum(self, values: Sequence[float]) -> list[float]:
        """``values`` added across ranks (unchanged in a world of one)."""
        if not self.distributed:
            return [float(v) for v in values]
        import torch
        import torch.distributed as dist

        t = torch.tensor([float(v) for v in values], dtype=torch.float64)
        if dist.get_backend() == "nccl":
            t = t.cuda()
        dist.all_reduce(t)
        return [float(v) for v in t.cpu()]

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        if self.distributed and self.started_here:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


def world(device_type: str = "cpu") -> World:
    """The world this process runs in, from torchrun's environment (a world of one without it)."""
    size = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if size <= 1:
        return World()
    import torch.distributed as dist

    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    started = False
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if backend == "nccl":
            import torch

            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend)
        started = True
    return World(rank, size, local_rank, started)


def main_process() -> bool:
    """Whether this process is rank 0 (or not under torchrun at all): the one that reports."""
    return int(os.environ.get("RANK", "0") or 0) == 0
