"""Several processes, one run: what the training loop needs from ``torch.distributed`` under torchrun.

``torchrun --nproc_per_node N synthaug train ...`` starts N copies of the command with ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous address in their environment. :func:`world` reads
them, joins the process group (NCCL when the run is on CUDA, gloo on the CPU) and says which part of
the work is this process's. Without torchrun (``WORLD_SIZE`` unset or 1) it is a world of one and
nothing here touches ``torch.distributed``, so single-process runs are exactly what they were.

The rules the loops keep with it: every rank computes the same epoch order (and the same random
draws: augmentation, pairing, noise) from the seed and takes its interleaved share of each batch
(:meth:`World.share`); gradients are averaged across ranks (DistributedDataParallel in the classifier
loop; :meth:`World.average_gradients` after each backward in the GAN fits, as StyleGAN2-ADA does,
because a GAN step runs D twice before one backward, freezes D during G's step and, in xpgan, takes
an R1 gradient penalty, none of which DDP's hooks allow); sums (loss, correct, seen) are added across
ranks; only rank 0 writes (checkpoints, manifest, figures, stores) and shows progress. Work that is
not training (generating synthetic images) is shared out in chunks and gathered to rank 0
(:meth:`World.gather`).
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

    def average_gradients(self, modules, share: float | None = None) -> None:
        """Every gradient of ``modules`` replaced by its mean over the global batch, in place, on every rank.

        ``share``: this rank's part of the global batch (its images / the batch's images); each rank's
        gradient of its own mean loss is weighted by ``share`` and the weighted gradients are added, so
        uneven shares still give exactly the gradient of the whole batch's mean loss. None: 1 / size.
        Call it after ``backward`` and before ``optimizer.step``; nothing happens in a world of one."""
        if not self.distributed:
            return
        import torch
        import torch.distributed as dist

        if isinstance(modules, torch.nn.Module):
            modules = [modules]
        grads = [p.grad for m in modules for p in m.parameters() if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1).float() for g in grads])
        flat.mul_(1.0 / self.size if share is None else float(share))
        dist.all_reduce(flat)
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()

    def broadcast(self, modules) -> None:
        """Rank 0's parameters and buffers (BatchNorm statistics too) copied to every rank: after a fit,
        every process generates with the one model rank 0 saves."""
        if not self.distributed:
            return
        import torch
        import torch.distributed as dist

        if isinstance(modules, torch.nn.Module):
            modules = [modules]
        with torch.no_grad():
            for m in modules:
                for t in [*m.parameters(), *m.buffers()]:
                    if dist.get_backend() == "nccl" or t.device.type == "cpu":
                        dist.broadcast(t.data, 0)
                    else:  # gloo moves CPU tensors
                        host = t.data.cpu()
                        dist.broadcast(host, 0)
                        t.data.copy_(host)

    def gather(self, value):
        """Rank 0: the list of every rank's ``value`` (rank order); the others: None. For the small,
        picklable results of shared-out work (chunks of generated images): objects travel between the
        processes of this run through the process group, never through a file."""
        if not self.distributed:
            return [value]
        import torch.distributed as dist

        out = [None] * self.size if self.main else None
        dist.gather_object(value, out, dst=0)
        return out

    def sync_batchnorm(self, module, device):
        """``module`` with SyncBatchNorm in place of BatchNorm when the run is on CUDA in several processes
        (statistics over the global batch, as in one process); unchanged otherwise (gloo on the CPU has
        no SyncBatchNorm: each rank normalises its own share). The parameters stay the same tensors."""
        if not (self.distributed and getattr(device, "type", str(device)) == "cuda"):
            return module
        import torch

        return torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)

    def rank_seed(self, seed: int, *keys: int) -> int:
        """A seed for this rank's own randomness (dropout masks) that differs between ranks; rank 0's
        stream is the single-process one, so only ranks 1.. call it."""
        import numpy as np

        return int(np.random.SeedSequence([int(seed), self.rank, *map(int, keys)]).generate_state(1)[0])

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        if self.distributed and self.started_here:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


def processes() -> int:
    """How many processes this run has (torchrun's ``WORLD_SIZE``; 1 without torchrun), from the
    environment alone: checks before any training use it without joining the group."""
    return max(1, int(os.environ.get("WORLD_SIZE", "1") or 1))


def check_batch(batch_size: int, option: str) -> None:
    """Refuse a global batch that cannot give every process an image (one line naming ``option``)."""
    size = processes()
    if batch_size < size:
        from synthaug.errors import SynthaugError

        raise SynthaugError(f"{option}={batch_size} cannot be shared by {size} processes "
                            f"(each takes part of every batch): pass {option}={size} or more")


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


def world_of(run) -> World:
    """The world of a run context (:class:`synthaug.RunContext`): its process group joined (NCCL when the
    run is on CUDA, gloo on the CPU); a world of one for a run of one process."""
    if run.world_size <= 1:
        return World()
    from synthaug.kit.device import resolve_device

    return world(resolve_device(run.device).type)


def finish() -> None:
    """Leave the process group if this process joined one (the end of a command under torchrun)."""
    if processes() > 1:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


def main_process() -> bool:
    """Whether this process is rank 0 (or not under torchrun at all): the one that reports."""
    return int(os.environ.get("RANK", "0") or 0) == 0
