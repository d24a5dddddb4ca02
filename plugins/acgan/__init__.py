"""acgan (CovidGAN, Waheed et al. 2020): an auxiliary-classifier GAN that samples images of any class."""
