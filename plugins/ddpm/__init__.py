"""ddpm: a class-conditional diffusion model (MONAI U-Net) sampled with DDIM and classifier-free guidance."""
