"""Will it fit? Peak-memory estimates for training, checked against what the device has, before any work.

A trainable synthesizer and the classifier loop build their networks on torch's ``meta`` device (shapes
only: nothing is allocated, a paper-size network costs no memory), run one forward at the real batch
size under :func:`saved_bytes`, and hand a :class:`TrainingEstimate` to :func:`check_memory`. It
refuses with one line, naming the option that would fit, when the estimate exceeds
:func:`available_bytes`; otherwise it returns the record that the run keeps (``memory`` in the store's
synthesizer config and checkpoint, in a training run's manifest), completed after training by
:func:`finish_record` with the measured peak.

``SYNTHAUG_SKIP_MEMORY_CHECK=1`` skips the refusal (the estimate is still recorded).
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from synthaug.errors import SynthaugError

#: The estimate is this times (weights + gradients + optimizer state + saved activations), plus the
#: plugin's data, plus HEADROOM_BYTES. Autograd's saved tensors are the bulk of a step, but the backward
#: pass holds gradient buffers of about the largest activations at once, CPU convolutions keep
#: workspaces and the allocator keeps freed blocks. Calibrated on seven CPU runs (figures in
#: docs/scaling.md, with their commands): the growth of resident memory from the check to the end of
#: training was 1.19 to 1.69 times the unscaled sum; 1.19 for the one large run (xpgan's paper
#: networks, batch 4: 11.3 GB against 9.5 GB), the higher ratios on runs under 1 GB, where libraries
#: imported after the check weigh most.
SAFETY_FACTOR = 1.5
#: Added to every estimate: what a run takes besides its networks and data (libraries imported once
#: training starts, the loader's batches, the interpreter's working set). The one measured run that
#: grew past 1.5 x its sum did so by 0.07 GB (xpgan small, batch 16); with this, every estimate was
#: above the growth measured (at most 0.81 of it: xpgan paper, batch 4).
HEADROOM_BYTES = 256 * 2 ** 20
#: Set to 1 to skip the refusal (the estimate is still recorded).
SKIP_ENV = "SYNTHAUG_SKIP_MEMORY_CHECK"


# ---------------------------------------------------------------------------------------------
# what the device has
# ---------------------------------------------------------------------------------------------
def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def cgroup_free_bytes(root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """What the memory cgroup of this process still allows (limit minus usage), or None without a limit.
    cgroup v2 (``memory.max``, ``memory.current``) and v1 (``memory/memory.limit_in_bytes``)."""
    for limit_file, usage_file in (("memory.max", "memory.current"),
                                   ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes")):
        limit = _read_int(root / limit_file)  # "max" (v2, no limit) reads as None
        usage = _read_int(root / usage_file)
        if limit is not None and usage is not None and limit < 2 ** 60:  # v1 writes ~2^63 for "no limit"
            return max(0, limit - usage)
    return None


def cpu_available_bytes(meminfo: Path = Path("/proc/meminfo"), cgroup: Path = Path("/sys/fs/cgroup")) -> int | None:
    """MemAvailable of ``/proc/meminfo``, capped by the cgroup's remaining limit; None where neither is known."""
    available = None
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
                break
    except OSError:
        pass
    capped = cgroup_free_bytes(cgroup)
    if capped is not None:
        available = capped if available is None else min(available, capped)
    return available


#: The share of the free memory that images read into memory may take (the rest is for the networks
#: and their training): what ``balance`` allows a synthesizer that does not stream, and what a
#: streaming one (pix2pix) allows itself before it reads its training pairs a batch at a time instead.
IN_MEMORY_SHARE = 0.5


def local_processes() -> int:
    """How many processes of this run share this machine's memory: torchrun's ``LOCAL_WORLD_SIZE``
    (every one runs the same fit or loop at once), 1 without torchrun."""
    import os

    return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))


def process_cpu_bytes() -> int | None:
    """This process's part of the free CPU memory: what is free divided among the run's processes on
    this machine (all of it in one process); None where it cannot be read."""
    free = cpu_available_bytes()
    return None if free is None else free // local_processes()


def fits_in_memory(nbytes: int, share: float = IN_MEMORY_SHARE) -> bool:
    """Whether ``nbytes`` of images may be held in memory: at most ``share`` of this process's part of
    the free memory (True where that cannot be read)."""
    free = process_cpu_bytes()
    return free is None or nbytes <= free * share


def available_bytes(device) -> int | None:
    """Free memory of ``device`` (a ``torch.device`` or name) in bytes: on the CPU what the kernel can
    give without swapping (capped by the cgroup limit), on CUDA ``torch.cuda.mem_get_info``; None where
    it cannot be known (then nothing is refused). Under torchrun the CPU's free memory is divided among
    the run's processes on this machine (each GPU is its own process's)."""
    kind = str(device)
    if kind.startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info(torch.device(kind))
        return int(free)
    return process_cpu_bytes()


def current_bytes(device) -> int:
    """Memory in use now: the process's resident set on the CPU, allocated tensors on CUDA."""
    if str(device).startswith("cuda"):
        import torch

        return int(torch.cuda.memory_allocated(torch.device(str(device))))
    resident = _resident_bytes()
    return resident if resident is not None else peak_bytes("cpu")


def _resident_bytes() -> int | None:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def peak_bytes(device) -> int:
    """The measured peak: the process's peak resident set on the CPU (the whole process lifetime), the
    peak of allocated tensors since :func:`check_memory` on CUDA.

    On the CPU, the largest of ``ru_maxrss``, ``VmHWM`` and the resident set now: the kernel updates
    the high-water mark behind ``ru_maxrss`` lazily, so in a long-lived process it can lag the
    resident set that :func:`current_bytes` reads (seen: 20 kB below it in a test worker)."""
    if str(device).startswith("cuda"):
        import torch

        return int(torch.cuda.max_memory_allocated(torch.device(str(device))))
    peak = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # kilobytes on Linux
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peak = max(peak, int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    return max(peak, _resident_bytes() or 0)


# ---------------------------------------------------------------------------------------------
# what training needs
# ---------------------------------------------------------------------------------------------
def parameter_bytes(*modules) -> int:
    """Bytes of the trainable parameters of ``modules`` (meta modules count the same)."""
    return sum(p.numel() * p.element_size() for m in modules for p in m.parameters() if p.requires_grad)


def saved_bytes(run: Callable[[], Any]) -> int:
    """Bytes of the tensors autograd keeps for the backward pass while ``run()`` computes a loss.

    Build the modules and inputs ``run`` uses on the meta device (``with torch.device("meta"):``):
    shapes propagate, nothing is allocated. Every tensor saved for backward is counted once (by its
    storage), parameters and views of them excluded (:func:`parameter_bytes` counts them); a tensor
    computed from a parameter (an equalized-lr weight times its scale) is memory of the step and counts.
    """
    import torch

    seen: dict[int, int] = {}

    def pack(tensor):
        base = tensor if tensor._base is None else tensor._base
        if not isinstance(base, torch.nn.Parameter):
            storage = tensor.untyped_storage()
            seen[storage._cdata] = max(seen.get(storage._cdata, 0), storage.nbytes())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        run()
    return sum(seen.values())


def too_small_error(exc: Exception, what: str, advice: str):
    """The one-line error for a network that cannot take an image of this size (a shape error of its
    forward pass, e.g. DenseNet-121's last pooling on 16-px images: ``Output size is too small``),
    or None for any other failure (an operation the meta device lacks: the estimate is then skipped)."""
    from synthaug.errors import SynthaugError

    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if not isinstance(exc, RuntimeError) or "meta" in text.lower() or "size" not in text.lower():
        return None
    return SynthaugError(f"{what}: the network cannot take images of this size ({text}); {advice}")


def gigabytes(n: float) -> str:
    """``31 GB``, ``1.4 GB``, ``0.35 GB``: the figure the messages print."""
    g = n / 1e9
    return f"{g:.0f} GB" if g >= 10 else f"{g:.1f} GB" if g >= 1 else f"{g:.2f} GB"


@dataclass
class TrainingEstimate:
    """The peak of one training run, in bytes (float32 everywhere: bf16 autocast on CUDA only lowers it)."""

    what: str  # the message's subject: "xpgan (preset paper, batch 16)"
    device: str  # the resolved device: "cpu", "cuda:0"
    parameters: int  # trainable weights of every network trained at once
    activations: int  # saved for backward at the peak of one step (saved_bytes of its forwards)
    data: int = 0  # what the plugin holds besides: cached pairs, copies of the images
    optimizer_states: float = 2.0  # tensors of optimizer state per parameter: Adam 2, SGD with momentum 1

    @property
    def training_bytes(self) -> int:
        """Weights, gradients, optimizer state and activations, unscaled."""
        return int(self.parameters * (2 + self.optimizer_states) + self.activations)

    @property
    def total(self) -> int:
        """What the run may take: SAFETY_FACTOR x the training bytes, the data, the headroom."""
        return int(SAFETY_FACTOR * self.training_bytes + self.data) + HEADROOM_BYTES


def check_memory(estimate: TrainingEstimate, advice: str, *, available: int | None = None) -> dict[str, Any]:
    """Refuse, with one line naming ``advice`` (the option that would fit), when ``estimate.total``
    exceeds what ``estimate.device`` has; otherwise the record a run keeps. Call it before training
    starts, and :func:`finish_record` after."""
    free = available_bytes(estimate.device) if available is None else available
    if estimate.device.startswith("cuda"):
        import torch

        torch.cuda.reset_peak_memory_stats(torch.device(estimate.device))
    record = {"device": estimate.device, "estimate_bytes": estimate.total, "available_bytes": free,
              "start_bytes": current_bytes(estimate.device), "peak_bytes": None,
              "parts": {"parameters": estimate.parameters, "activations": estimate.activations,
                        "data": estimate.data, "optimizer_states": estimate.optimizer_states,
                        "safety_factor": SAFETY_FACTOR}}
    skip = os.environ.get(SKIP_ENV, "") not in ("", "0")
    if free is not None and estimate.total > free and not skip:
        device = "cpu" if estimate.device == "cpu" else estimate.device
        raise SynthaugError(f"{estimate.what} needs about {gigabytes(estimate.total)} to train on {device}; "
                            f"{gigabytes(free)} are available: {advice} (or {SKIP_ENV}=1 to try anyway)")
    return record


def finish_record(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """``record`` with the measured peak filled in (see :func:`peak_bytes`)."""
    if record is None:
        return None
    return {**record, "peak_bytes": peak_bytes(record["device"])}
