"""pix2pix (liang2021): a conditional GAN that translates normal radiographs into the minority class."""
