"""The ``ddpm`` options, its two presets, and the checks that refuse a bad option in one line."""

from __future__ import annotations

from dataclasses import dataclass

from synthaug import SynthaugError

#: The presets: what an option left unset (None) takes. ``cpu``: a small U-Net that fits and samples the
#: built-in 64 px data in minutes on 2 cores (docs/ddpm.md has the measured times); ``paper``: a
#: 256 px-class U-Net with attention, hours on a GPU.
PRESETS: dict[str, dict] = {
    "cpu": {"channels": (16, 32, 64), "res_blocks": 1, "attention": False, "epochs": 15, "batch_size": 16,
            "lr": 1e-3, "ema_decay": 0.995, "steps": 20},
    "paper": {"channels": (64, 128, 256, 256, 512), "res_blocks": 2, "attention": True, "epochs": 200,
              "batch_size": 16, "lr": 1e-4, "ema_decay": 0.9999, "steps": 50},
}

#: Our schedule names -> MONAI 1.6's ``NoiseSchedules`` names (``DDPMScheduler(schedule=...)``).
SCHEDULES = {"cosine": "cosine", "linear": "linear_beta", "scaled_linear": "scaled_linear_beta"}
#: The network's training target (MONAI's ``prediction_type``).
PREDICTIONS = ("epsilon", "v_prediction")


@dataclass
class DDPMConfig:
    """A class-conditional DDPM (Ho et al. 2020) with classifier-free guidance (Ho & Salimans 2022),
    sampled with DDIM (Song et al. 2021). The options left None take the preset's value; an option given
    explicitly overrides the preset. The seed and the device are the run's (``--seed``, ``--device``).
    """

    preset: str = "cpu"  # "cpu" (small U-Net, minutes on 2 cores at 64 px) or "paper" (256 px class, hours on a GPU)
    channels: tuple | None = None  # U-Net widths, one per level; depth = len (sides divisible by 2^(levels-1))
    # (None: cpu 16,32,64; paper 64,128,256,256,512)
    res_blocks: int | None = None  # residual blocks per level (None: cpu 1, paper 2)
    attention: bool | None = None  # self-attention at the two coarsest levels below full size (None: cpu off,
    # paper on); MONAI's middle block always has one
    epochs: int | None = None  # passes over the real training images (None: cpu 15, paper 200)
    batch_size: int | None = None  # real images per step, shared out among torchrun processes (None: 16)
    lr: float | None = None  # Adam learning rate (None: cpu 1e-3, paper 1e-4)
    ema_decay: float | None = None  # decay of the weights' EMA that sampling uses, warmed up as
    # min(decay, (1 + n) / (10 + n)) after n steps; 0: the trained weights (None: cpu 0.995, paper 0.9999)
    timesteps: int = 1000  # diffusion timesteps T of training
    schedule: str = "cosine"  # noise schedule: cosine (Nichol & Dhariwal), linear (Ho et al.: beta 1e-4..0.02)
    # or scaled_linear (MONAI's cosine, linear_beta, scaled_linear_beta)
    prediction: str = "v_prediction"  # the network's target: v_prediction (Salimans & Ho's v) or epsilon (the
    # noise); v by default: at the same training, epsilon's samples kept visible noise (docs/ddpm.md)
    p_uncond: float = 0.15  # probability that a training image gets the "no class" label instead of its own
    guidance: float = 2.0  # classifier-free guidance scale: 0 unconditional, 1 conditional, > 1 guided
    steps: int | None = None  # DDIM sampling steps, eta 0 (None: cpu 20, paper 50; docs/ddpm.md measures)
    sample_batch: int = 32  # images per sampling batch (twice that per forward when guided); memory only
    figure_every: int = 10  # a figure of 4 samples per class (10 DDIM steps) every this many epochs and
    # after the last, in the work directory's samples/ (0: none)

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise SynthaugError(f"ddpm preset must be one of {', '.join(PRESETS)}; got {self.preset!r}")
        for name, value in PRESETS[self.preset].items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        self.channels = _parse_channels(self.channels)
        self.attention = bool(self.attention)
        for name in ("res_blocks", "epochs", "batch_size", "timesteps", "steps", "sample_batch"):
            if int(getattr(self, name)) < 1:
                raise SynthaugError(f"ddpm {name} must be at least 1; got {getattr(self, name)}")
        if self.steps > self.timesteps:
            raise SynthaugError(f"ddpm steps must be at most timesteps ({self.timesteps}); got {self.steps}")
        if self.figure_every < 0:
            raise SynthaugError(f"ddpm figure_every must be >= 0 (0: no figures); got {self.figure_every}")
        if not self.lr > 0:
            raise SynthaugError(f"ddpm lr must be > 0; got {self.lr}")
        for name in ("ema_decay", "p_uncond"):
            if not 0 <= getattr(self, name) < 1:
                raise SynthaugError(f"ddpm {name} must lie in [0, 1); got {getattr(self, name)}")
        if not self.guidance >= 0:
            raise SynthaugError(f"ddpm guidance must be >= 0 (0 unconditional, 1 conditional); got {self.guidance}")
        if self.guidance != 1 and self.p_uncond == 0:
            raise SynthaugError(f"ddpm guidance {self.guidance} needs the unconditional prediction, which p_uncond 0 "
                                f"never trains: set p_uncond > 0 or guidance 1")
        if self.schedule not in SCHEDULES:
            raise SynthaugError(f"ddpm schedule must be one of {', '.join(SCHEDULES)}; got {self.schedule!r}")
        if self.prediction not in PREDICTIONS:
            raise SynthaugError(f"ddpm prediction must be one of {', '.join(PREDICTIONS)}; got {self.prediction!r}")

    @property
    def levels(self) -> int:
        """The U-Net's depth: its number of resolutions."""
        return len(self.channels)

    @property
    def size_factor(self) -> int:
        """What every image side must be divisible by: 2 to the number of downsamplings."""
        return 2 ** (self.levels - 1)


def _parse_channels(value) -> tuple[int, ...]:
    """``"32,64,64"`` or a list -> ``(32, 64, 64)``, each at least 1; refused in one line otherwise."""
    parts = value.replace("x", ",").split(",") if isinstance(value, str) else list(value)
    try:
        channels = tuple(int(p) for p in parts if str(p).strip() != "")
    except (TypeError, ValueError):
        raise SynthaugError(f"ddpm channels must be widths such as 32,64,64; got {value!r}") from None
    if not channels or min(channels) < 1 or any(float(p) != int(p) for p in parts if str(p).strip() != ""):
        raise SynthaugError(f"ddpm channels must be widths such as 32,64,64 (one per level, each >= 1); got {value!r}")
    return channels
